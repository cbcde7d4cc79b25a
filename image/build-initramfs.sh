#!/usr/bin/env bash
# Build the appliance's initramfs (an lz4 cpio) from an unpacked Debian kernel, busybox-static,
# the vmfs-rescue binary and image/overlay (init, mdev rules, helper scripts).
#
#   build-initramfs.sh KROOT KVER BIN OUT.img [VERSION-TEXT]
#
# Reproducible: files sorted, owners 0:0, every mtime SOURCE_DATE_EPOCH, cpio --reproducible.
set -euo pipefail

KROOT="$1" KVER="$2" BIN="$3" OUTFILE="$4" VERSION_TEXT="${5:-unknown}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH}"
umask 022
export LC_ALL=C
ROOT="$(dirname "$OUTFILE")/rootfs"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc/vmfs-rescue,proc,sys,dev,run,tmp,mnt,root,lib/modules,usr/share/keymaps}

# busybox and a link per applet (at the path busybox names for it).
cp /bin/busybox "$ROOT/bin/busybox"
while read -r applet; do
    [[ "$applet" == bin/busybox ]] && continue
    [[ -e "$ROOT/$applet" ]] || ln -s /bin/busybox "$ROOT/$applet"
done < <(/bin/busybox --list-full)

# The same overlay Buildroot uses (buildroot/configs/vmfs_rescue_defconfig).
cp -a "$HERE/overlay/." "$ROOT/"
chmod -R u+rwX,go+rX,go-w "$ROOT"

# A program, stripped, at /usr/bin/NAME; if it is dynamic, its loader and libraries too.
add_program() {
    local src="$1" name="$2"
    strip -o "$ROOT/usr/bin/$name" "$src"
    chmod 755 "$ROOT/usr/bin/$name"
    if ldd "$src" >/dev/null 2>&1; then
        while read -r lib; do
            mkdir -p "$ROOT/$(dirname "$lib")"
            [[ -e "$ROOT/$lib" ]] || cp -L "$lib" "$ROOT/$lib"
        done < <(ldd "$src" | grep -o '/[^ ]*' | sort -u)
    fi
}
add_program "$BIN" vmfs-rescue
# ntfs-3g (FUSE): Debian's kernel has no ntfs3 driver, and NTFS is what a Windows admin's
# results disk usually has. /etc/mtab is where it looks for mounts.
add_program "$(command -v ntfs-3g)" ntfs-3g
ln -s /proc/self/mounts "$ROOT/etc/mtab"

# Modules of image/modules.list and their dependencies (kmod resolves them in KROOT).
mapfile -t MODS < <(sed 's/#.*//; /^[[:space:]]*$/d' "$HERE/modules.list")
KO=()
for m in "${MODS[@]}"; do
    if ! deps="$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1)"; then
        echo "build-initramfs.sh: module $m: $deps" >&2
        exit 1
    fi
    while read -r kind path _; do
        [[ "$kind" == insmod ]] && KO+=("$path")
    done <<<"$deps"
done
MODDIR="$KROOT/lib/modules/$KVER"
for ko in $(printf '%s\n' "${KO[@]}" | sort -u); do
    rel="${ko#"$MODDIR"/}"
    mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$rel")"
    cp "$ko" "$ROOT/lib/modules/$KVER/$rel" # unchanged: Debian's signatures must stay (Secure Boot lockdown)
done
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$KVER/"
depmod -b "$ROOT" "$KVER"

# Console keymaps for busybox loadkmap (vmfs.keymap=NAME), from console-data.
KM=/usr/share/keymaps/i386
while read -r name src; do
    loadkeys -b "$KM/$src.kmap.gz" >"$ROOT/usr/share/keymaps/$name.bmap" </dev/null
done <<'EOF'
us qwerty/us
uk qwerty/uk
de qwertz/de-latin1
de-ch qwertz/sg-latin1
fr azerty/fr-latin9
fr-ch qwertz/fr_CH-latin1
be azerty/be-latin1
es qwerty/es
it qwerty/it
pt qwerty/pt-latin1
br qwerty/br-abnt2
nl qwerty/nl
se qwerty/se-latin1
no qwerty/no-latin1
dk qwerty/dk-latin1
fi qwerty/fi
pl qwerty/pl
cz qwertz/cz-us-qwertz
hu qwertz/hu
jp qwerty/jp106
us-dvorak dvorak/dvorak
EOF

# Identity: /init finds the boot medium by this id (the medium's /vmfs-rescue.id holds the same).
echo "$VERSION_TEXT" >"$ROOT/etc/vmfs-rescue/version"
(cd "$ROOT" && find . -type f ! -path ./etc/vmfs-rescue/image-id -print0 | sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-32 >"$ROOT/etc/vmfs-rescue/image-id"

find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$ROOT" && find . -mindepth 1 | sort | cpio -o -H newc --owner=0:0 --reproducible --quiet) |
    lz4 -l -9 -q -f - "$OUTFILE"
# lz4 (the kernel's legacy lz4 frame), not zstd: 60% bigger, but the kernel unpacks it in half
# the time, which under emulation (QEMU TCG) is a second of boot: 0.9 s against 1.8 s.
echo "build-initramfs.sh: $(find "$ROOT/lib/modules" -name '*.ko' | wc -l) modules, rootfs $(du -sm "$ROOT" | cut -f1) MiB, $(stat -c %s "$OUTFILE") bytes lz4"
