#!/usr/bin/env bash
# Buildroot post-image script ($1 = BINARIES_DIR): the same hybrid ISO and raw USB image as
# image/build.sh, made by the same scripts (image/build-iso.sh, image/build-usb.sh) from
# Buildroot's bzImage and rootfs.cpio.zst. Uses the build host's xorriso, mtools, dosfstools,
# gdisk, syslinux, shim-signed and grub-efi-amd64-signed (Debian: see buildroot/README.md).
set -euo pipefail
BIN_DIR="$1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
: "${TARGET_DIR:?Buildroot exports TARGET_DIR}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct)}"
WORK="$BIN_DIR/vmfs-rescue-work"
rm -rf "$WORK"
mkdir -p "$WORK"
cp "$BIN_DIR/bzImage" "$WORK/vmlinuz"
cp "$BIN_DIR/rootfs.cpio.zst" "$WORK/initrd.img"
# stage-medium.sh reads the image id and version from WORK/rootfs.
ln -s "$TARGET_DIR" "$WORK/rootfs"
touch -d "@$SOURCE_DATE_EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img"
bash "$REPO/image/build-iso.sh" "$WORK" "$BIN_DIR/vmfs-rescue.iso"
bash "$REPO/image/build-usb.sh" "$WORK" "$BIN_DIR/vmfs-rescue-usb.img" "${VMFS_RESCUE_USB_MIB:-90}"
