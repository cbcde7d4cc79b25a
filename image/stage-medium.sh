#!/usr/bin/env bash
# Put the files every boot medium holds (ISO and USB image alike) into DIR:
# kernel, initramfs, GRUB menu, shim + signed GRUB + MokManager, the medium marker files and a
# sample settings file.
#
#   stage-medium.sh WORK DIR
set -euo pipefail

WORK="$1" DIR="$2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$DIR"/{boot/grub,EFI/BOOT,EFI/debian,.disk}
cp "$WORK/vmlinuz" "$DIR/boot/vmlinuz"
cp "$WORK/initrd.img" "$DIR/boot/initrd.img"
cp "$HERE/boot/grub.cfg" "$DIR/boot/grub/grub.cfg"
cp "$HERE/boot/grub-stub.cfg" "$DIR/EFI/debian/grub.cfg"
# shim is what the firmware trusts (Microsoft UEFI CA); it loads grubx64.efi beside it. No
# fbx64.efi: its fallback would add boot entries to the server's NVRAM.
cp /usr/lib/shim/shimx64.efi.signed "$DIR/EFI/BOOT/BOOTX64.EFI"
cp /usr/lib/shim/mmx64.efi.signed "$DIR/EFI/BOOT/mmx64.efi"
cp /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed "$DIR/EFI/BOOT/grubx64.efi"
# The signed GRUB's built-in config looks for /.disk/info when /EFI/debian/grub.cfg is absent.
echo "vmfs-rescue $(cat "$WORK/rootfs/etc/vmfs-rescue/version")" >"$DIR/.disk/info"
# /init recognises its own boot medium by this id.
cp "$WORK/rootfs/etc/vmfs-rescue/image-id" "$DIR/vmfs-rescue.id"
cp "$HERE/boot/vmfs-rescue.cfg" "$DIR/vmfs-rescue.cfg"
