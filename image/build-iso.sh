#!/usr/bin/env bash
# Build the hybrid ISO: boots as a CD and, written to a USB stick, as a disk; BIOS through
# isolinux, UEFI through shim and Debian's signed GRUB (so Secure Boot may stay on).
#
#   build-iso.sh WORK OUT.iso      (WORK holds vmlinuz, initrd.img and rootfs/ from build.sh)
set -euo pipefail

WORK="$1" OUTFILE="$2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH}"
umask 022
export LC_ALL=C
ISO="$WORK/iso"
rm -rf "$ISO"
mkdir -p "$ISO"/{boot/grub,isolinux,EFI/BOOT,EFI/debian,.disk}

bash "$HERE/stage-medium.sh" "$WORK" "$ISO"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$ISO/isolinux/"
cp "$HERE/boot/syslinux.cfg" "$ISO/isolinux/isolinux.cfg"
# Dates first: mcopy -m below copies them into the FAT image.
find "$ISO" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# The El Torito EFI image: a small FAT with the EFI files (firmware loads shim from it; GRUB then
# finds the ISO itself by /vmfs-rescue.id).
EFIIMG="$ISO/boot/efiboot.img"
rm -f "$EFIIMG"
mkfs.vfat -C -n VMFS_EFI -i 5646530e --invariant "$EFIIMG" 8192 >/dev/null
mmd -i "$EFIIMG" ::/EFI ::/EFI/BOOT ::/EFI/debian
for f in EFI/BOOT/BOOTX64.EFI EFI/BOOT/grubx64.efi EFI/BOOT/mmx64.efi EFI/debian/grub.cfg; do
    mcopy -m -i "$EFIIMG" "$ISO/$f" "::/$f"
done

# Again: making efiboot.img changed boot/'s mtime, which xorriso records.
find "$ISO" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rm -f "$OUTFILE"
# xorriso takes its dates and the volume UUID from SOURCE_DATE_EPOCH.
xorriso -as mkisofs -quiet -o "$OUTFILE" \
    -iso-level 3 -full-iso9660-filenames -joliet -rational-rock -volid VMFS_RESCUE \
    -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -eltorito-boot isolinux/isolinux.bin -eltorito-catalog isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table \
    -eltorito-alt-boot -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
    "$ISO"
echo "build-iso.sh: $OUTFILE $(stat -c %s "$OUTFILE") bytes"
