#!/usr/bin/env bash
# Guest-file extraction throughput next to `cat` of the same bytes, in one run.
#
#   scripts/bench-guest.sh [SIZE_MIB]      (default 512)
#
# Builds release, makes a raw disk image holding a FAT32 file system (mkfs.vfat) with one file
# of SIZE_MIB random MiB copied in by mcopy (a fresh file system: the file is contiguous, and the
# script checks that the bytes at its offset in the image are the file), then times, warm and
# cold (page cache dropped when allowed), median of ROUNDS, in pairs that do the same work:
#   (a) dd of the file's bytes from the raw image to /dev/null          (a plain read)
#   (b) vmfs-rescue guest cat IMAGE --guest-path /big.bin > /dev/null
#   (c) dd of the file's bytes from the raw image to DIR/big.bin, fsync (a plain copy)
#   (d) vmfs-rescue guest extract IMAGE --guest-path /big.bin --to DIR  (written, hashed, synced,
#       with its manifest)
# and prints MB/s (10^6 bytes/s) and the ratios b/a and d/c (target 0.8), and d/a for the
# record. Nothing asserts a time.
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_BENCH_DIR (default <target>/bench-guest),
# VMFS_RESCUE_BENCH_ROUNDS (default 3), VMFS_RESCUE_BENCH_BIN (a binary to time instead of
# building one).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${VMFS_RESCUE_BENCH_BIN:-$TARGET/release/vmfs-rescue}"
WORK="${VMFS_RESCUE_BENCH_DIR:-$TARGET/bench-guest}"
MIB="${1:-512}"
ROUNDS="${VMFS_RESCUE_BENCH_ROUNDS:-3}"
SIZE=$((MIB * 1024 * 1024))
export MTOOLS_SKIP_CHECK=1

log() { echo "bench-guest: $*" >&2; }
for t in mkfs.vfat mcopy; do
    command -v "$t" >/dev/null || { log "$t missing: bash scripts/setup-tools.sh"; exit 1; }
done

if [[ -z "${VMFS_RESCUE_BENCH_BIN:-}" ]]; then
    log "cargo build --release"
    cargo build --release --quiet
fi
mkdir -p "$WORK"
IMAGE="$WORK/fat32.img"
BIG="$WORK/big.bin"
if [[ ! -f "$IMAGE" || "$(stat -c %s "$BIG" 2>/dev/null)" != "$SIZE" ]]; then
    log "making $IMAGE with a $MIB MiB file"
    rm -f "$IMAGE" "$BIG"
    head -c "$SIZE" /dev/urandom >"$BIG"
    truncate -s $((SIZE + SIZE / 4 + 64 * 1024 * 1024)) "$IMAGE"
    mkfs.vfat -F 32 -n BENCH "$IMAGE" >/dev/null
    mcopy -i "$IMAGE" "$BIG" ::/big.bin
fi

# The file's byte offset in the image, from the FAT32 boot sector and its first cluster.
first="$("$BIN" guest ls --json "$IMAGE" --guest-path /big.bin | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
OFF="$(python3 - "$IMAGE" "$first" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(512)
bps, spc, res, nfats = struct.unpack_from("<HBHB", b, 11)
fatsz = struct.unpack_from("<I", b, 36)[0]
print((res + nfats * fatsz) * bps + (int(sys.argv[2]) - 2) * spc * bps)
PY
)"
read_bytes() { dd if="$IMAGE" bs=1M iflag=skip_bytes,count_bytes skip="$OFF" count="$SIZE" status=none "$@"; }
[[ "$(read_bytes | sha256sum)" == "$(sha256sum <"$BIG")" ]] || { log "the file is not contiguous at $OFF"; exit 1; }

can_drop=0
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then can_drop=1; fi
drop_caches() { [[ $can_drop -eq 0 ]] || { sync; echo 3 >/proc/sys/vm/drop_caches; }; }
elapsed() {
    local t0=$EPOCHREALTIME
    "$@" >/dev/null || { echo fail; return; }
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
median() { printf '%s\n' "$@" | grep -v fail | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "fail"; else print a[int((NR + 1) / 2)] }'; }
mbps() { [[ "$1" =~ ^[0-9.]+$ ]] && awk -v n="$SIZE" -v s="$1" 'BEGIN { printf "%.1f", n / 1e6 / s }' || echo "$1"; }
ratio() { [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo n/a; }

run_cat() { read_bytes of=/dev/null; }
run_guestcat() { "$BIN" guest cat "$IMAGE" --guest-path /big.bin; }
run_copy() { mkdir -p "$WORK/out" && read_bytes of="$WORK/out/big.bin" conv=fsync; }
run_extract() { "$BIN" guest extract "$IMAGE" --guest-path /big.bin --to "$WORK/out"; }

declare -A RUNS
for ((r = 1; r <= ROUNDS; r++)); do
    for m in cat guestcat copy extract; do
        rm -rf "$WORK/out"
        drop_caches
        RUNS[$m.cold]+=" $(elapsed "run_$m")"
        rm -rf "$WORK/out"
        RUNS[$m.warm]+=" $(elapsed "run_$m")"
    done
done
want="$(sha256sum <"$BIG" | cut -d' ' -f1)"
got="$(sha256sum <"$WORK/out/big.bin" | cut -d' ' -f1)"
[[ "$want" == "$got" ]] || { log "extracted file differs from the original"; exit 1; }

echo "image: $IMAGE (FAT32, /big.bin $SIZE bytes); rounds $ROUNDS, medians"
[[ $can_drop -eq 1 ]] || echo "cold: page cache could NOT be dropped: cold = first run of a round"
printf '%-34s %9s %10s %9s %10s\n' "" "cold s" "cold MB/s" "warm s" "warm MB/s"
declare -A T
for m in cat guestcat copy extract; do
    for t in cold warm; do
        # shellcheck disable=SC2086
        T[$m.$t]="$(median ${RUNS[$m.$t]})"
    done
    case $m in
        cat) label="(a) dd of the bytes to /dev/null" ;;
        guestcat) label="(b) vmfs-rescue guest cat" ;;
        copy) label="(c) dd of the bytes to a file" ;;
        extract) label="(d) vmfs-rescue guest extract" ;;
    esac
    printf '%-34s %9s %10s %9s %10s\n' "$label" "${T[$m.cold]}" "$(mbps "${T[$m.cold]}")" "${T[$m.warm]}" "$(mbps "${T[$m.warm]}")"
done
echo "THROUGHPUT RATIO guest cat (b/a):          cold $(ratio "${T[cat.cold]}" "${T[guestcat.cold]}"), warm $(ratio "${T[cat.warm]}" "${T[guestcat.warm]}")"
echo "THROUGHPUT RATIO guest extract (d/c):      cold $(ratio "${T[copy.cold]}" "${T[extract.cold]}"), warm $(ratio "${T[copy.warm]}" "${T[extract.warm]}")"
echo "for the record, extract vs plain read (d/a): cold $(ratio "${T[cat.cold]}" "${T[extract.cold]}"), warm $(ratio "${T[cat.warm]}" "${T[extract.warm]}")"
