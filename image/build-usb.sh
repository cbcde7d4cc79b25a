#!/usr/bin/env bash
# Build the raw USB disk image: GPT with one FAT32 EFI system partition (label VMFS_RESCUE)
# holding everything; BIOS boots syslinux through gptmbr.bin (the partition has the
# legacy-BIOS-bootable attribute), UEFI boots shim + signed GRUB. Free space on the partition
# takes results and logs (and vmfs-rescue.cfg). No loop device or mount: sgdisk, mkfs.vfat
# --offset, mtools and syslinux --offset work on the file.
#
#   build-usb.sh WORK OUT.img SIZE_MIB
set -euo pipefail

WORK="$1" OUTFILE="$2" MIB="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH}"
umask 022
export LC_ALL=C
STAGE="$WORK/usb"
rm -rf "$STAGE" "$OUTFILE"
mkdir -p "$STAGE/syslinux"
bash "$HERE/stage-medium.sh" "$WORK" "$STAGE"
cp "$HERE/boot/syslinux.cfg" "$STAGE/syslinux/syslinux.cfg"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

truncate -s "${MIB}M" "$OUTFILE"
# Fixed GUIDs: the image is reproducible (and sticks made from it are told apart by content).
sgdisk -o -U 7a1e0b0e-5646-4d53-8000-000000000001 \
    -n 1:2048:0 -t 1:ef00 -c 1:VMFS_RESCUE -u 1:7a1e0b0e-5646-4d53-8000-000000000002 \
    -A 1:set:2 "$OUTFILE" >/dev/null
dd if=/usr/lib/syslinux/mbr/gptmbr.bin of="$OUTFILE" bs=440 count=1 conv=notrunc status=none
sectors="$(sgdisk -i 1 "$OUTFILE" | awk '/^Partition size:/{print $3}')"
# (mkfs.vfat warns that the file is larger than the partition: that is the point of --offset.)
mkfs.vfat -F 32 -n VMFS_RESCUE -i 5646530f --invariant --offset 2048 "$OUTFILE" $((sectors / 2)) 2>&1 >/dev/null |
    { grep -v 'block count mismatch' >&2 || true; }

IMG="$OUTFILE@@1M"
(cd "$STAGE" && find . -mindepth 1 -type d | sort) | while read -r d; do mmd -i "$IMG" "::/${d#./}"; done
(cd "$STAGE" && find . -type f | sort) | while read -r f; do mcopy -m -i "$IMG" "$STAGE/$f" "::/${f#./}"; done
syslinux --install --offset 1048576 --directory /syslinux "$OUTFILE"
echo "build-usb.sh: $OUTFILE $(stat -c %s "$OUTFILE") bytes, FAT32 partition $((sectors / 2048)) MiB"
