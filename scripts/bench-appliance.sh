#!/usr/bin/env bash
# Measure the rescue image: its size, and the time from QEMU start to the TUI start marker on
# the serial console, booting the ISO with BIOS under TCG (as qemu-test/run.sh boot-iso-bios),
# ROUNDS times (default 3; median shown).
#
#   bash scripts/bench-appliance.sh [ROUNDS]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
times=()
for ((i = 1; i <= ROUNDS; i++)); do
    # The first run builds the image if it is missing or stale.
    bash "$REPO/qemu-test/run.sh" boot-iso-bios >/dev/null
    t="$(awk '$1 == "boot-iso-bios" && $2 == "pass" {print $4}' "$REPO/qemu-test/out/results.txt")"
    [[ -n "$t" ]] || { echo "bench-appliance.sh: boot-iso-bios failed (qemu-test/out/boot-iso-bios/test.log)" >&2; exit 1; }
    times+=("$t")
    echo "round $i: boot to TUI ${t}s"
done
OUT="$REPO/image/out"
for f in vmfs-rescue.iso vmfs-rescue-usb.img initrd.img vmlinuz; do
    printf '%-20s %6.1f MiB (%d bytes)\n' "$f" "$(awk -v b="$(stat -c %s "$OUT/$f")" 'BEGIN{print b/1048576}')" "$(stat -c %s "$OUT/$f")"
done
median="$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"
echo "boot to TUI (ISO, BIOS, TCG -smp 2): median ${median}s of ${ROUNDS} (${times[*]}); includes the 2 s boot menu"
