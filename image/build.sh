#!/usr/bin/env bash
# Build the vmfs-rescue boot images from Debian packages and this repository:
#   image/out/vmfs-rescue.iso      hybrid ISO: CD or USB stick, BIOS (isolinux) and UEFI (shim + GRUB)
#   image/out/vmfs-rescue-usb.img  raw USB disk: GPT, one FAT32 ESP (syslinux for BIOS, shim + GRUB)
#
#   bash image/build.sh
#
# Needs only Debian packages (installed with apt-get when missing and run as root) and cargo.
# No installed kernel, loop device or mount: the kernel .deb is downloaded and unpacked.
# Reproducible: the same inputs give byte-identical images (SOURCE_DATE_EPOCH, default the last
# commit's time, fixes every timestamp; volume ids and GUIDs are fixed).
#
# Environment:
#   VMFS_RESCUE_KERNEL   kernel package (default: the one linux-image-amd64 depends on)
#   VMFS_RESCUE_BIN      use this vmfs-rescue binary instead of building it
#   VMFS_RESCUE_USB_MIB  size of the USB image in MiB (default 90)
#   CARGO_TARGET_DIR     as for cargo
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
WORK="$OUT/work"
CACHE="$OUT/cache"
START=$SECONDS
umask 022
export LC_ALL=C

if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
    SOURCE_DATE_EPOCH="$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 1767225600)"
fi
export SOURCE_DATE_EPOCH

# --- Debian packages ------------------------------------------------------------------------
PKGS=(busybox-static kmod cpio lz4 xorriso isolinux syslinux syslinux-common mtools dosfstools
    gdisk shim-signed grub-efi-amd64-signed kbd console-data binutils ntfs-3g)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $EUID -ne 0 ]]; then
        echo "build.sh: missing Debian packages: ${missing[*]}" >&2
        echo "build.sh: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "build.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$WORK" "$CACHE"

# --- kernel ---------------------------------------------------------------------------------
KPKG="${VMFS_RESCUE_KERNEL:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}"
if [[ -z "$KPKG" ]]; then
    echo "build.sh: cannot tell the kernel package (apt-cache depends linux-image-amd64); run apt-get update" >&2
    exit 1
fi
KVER="${KPKG#linux-image-}"
KROOT="$CACHE/kroot-$KVER"
if [[ ! -f "$KROOT/.done" ]]; then
    rm -rf "$CACHE"/kroot-* "$CACHE"/*.deb
    # apt-get download as root leaves a harmless "_apt" sandbox note: silence it.
    if ! (cd "$CACHE" && apt-get download -q "$KPKG" 2>/dev/null); then
        [[ $EUID -eq 0 ]] && apt-get update -qq
        (cd "$CACHE" && apt-get download -q "$KPKG")
    fi
    echo "build.sh: unpacking $(basename "$CACHE"/"$KPKG"_*.deb)"
    dpkg-deb -x "$CACHE"/"$KPKG"_*.deb "$KROOT"
    # The package has no modules.dep (its postinst makes it): needed for the dependency closure.
    depmod -b "$KROOT" "$KVER"
    touch "$KROOT/.done"
fi
KDEB_VERSION="$(dpkg-deb -f "$CACHE"/"$KPKG"_*.deb Version)"

# --- vmfs-rescue binary ---------------------------------------------------------------------
TRIPLE=x86_64-unknown-linux-gnu
if [[ -n "${VMFS_RESCUE_BIN:-}" ]]; then
    BIN="$VMFS_RESCUE_BIN"
else
    # Static (crt-static): no libraries to carry. The explicit --target keeps build scripts and
    # proc-macros dynamic. A dependency that cannot link statically (e.g. libudev) falls back to
    # the dynamic build; build-initramfs.sh then copies its libraries.
    echo "build.sh: cargo build --release --target $TRIPLE (static)"
    if ! (cd "$REPO" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TRIPLE" -q); then
        echo "build.sh: static build failed; building dynamic" >&2
        (cd "$REPO" && cargo build --release --locked --target "$TRIPLE" -q)
    fi
    BIN="${CARGO_TARGET_DIR:-$REPO/target}/$TRIPLE/release/vmfs-rescue"
fi

# --- initramfs, ISO, USB image ----------------------------------------------------------------
VERSION="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
bash "$HERE/build-initramfs.sh" "$KROOT" "$KVER" "$BIN" "$WORK/initrd.img" "$VERSION, kernel $KPKG $KDEB_VERSION"
cp "$KROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img"

bash "$HERE/build-iso.sh" "$WORK" "$OUT/vmfs-rescue.iso"
bash "$HERE/build-usb.sh" "$WORK" "$OUT/vmfs-rescue-usb.img" "${VMFS_RESCUE_USB_MIB:-90}"

# For qemu-test (-kernel/-initrd boots) and the Buildroot comparison.
cp "$WORK/vmlinuz" "$OUT/vmlinuz"
cp "$WORK/initrd.img" "$OUT/initrd.img"

echo "build.sh: done in $((SECONDS - START)) s ($VERSION, kernel $KVER $KDEB_VERSION)"
for f in vmfs-rescue.iso vmfs-rescue-usb.img vmlinuz initrd.img; do
    printf 'build.sh: %-20s %10d bytes (%s MiB)  sha256 %s\n' "$f" "$(stat -c %s "$OUT/$f")" \
        "$(awk -v b="$(stat -c %s "$OUT/$f")" 'BEGIN{printf "%.1f", b/1048576}')" \
        "$(sha256sum "$OUT/$f" | cut -c1-16)"
done
