#!/usr/bin/env bash
# Scan throughput against a plain sequential read of the same image, in the same run.
#
#   scripts/bench-scan.sh [IMAGE]        throughput: cat, dd bs=8M and `vmfs-rescue scan`
#   scripts/bench-scan.sh --sparse-2t    a 2 TiB sparse VMFS6 datastore: scan time, peak memory
#
# Throughput mode: without IMAGE, forges a healthy VMFS5 datastore (16G, full-size guests, about
# 1.4 GiB of data) and writes its data ranges one after the other, again and again, into a
# 4 GiB file with no holes (so every byte is read by all three). Each method runs
# twice per round, $VMFS_RESCUE_BENCH_ROUNDS rounds (default 3), with a cold page cache (dropped
# when allowed: root), interleaved forward and backward; the figures are medians of the round
# means, and best runs, in MB/s (10^6 bytes per second) of the image's data bytes. The scan's
# last run prints its summary line (with its peak memory).
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_BENCH_DIR (default <target>/bench-scan: images and
# state directories go there).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET/release/vmfs-rescue"
WORK="${VMFS_RESCUE_BENCH_DIR:-$TARGET/bench-scan}"
ROUNDS="${VMFS_RESCUE_BENCH_ROUNDS:-3}"

log() { echo "bench-scan: $*" >&2; }

log "cargo build --release"
cargo build --release --quiet
mkdir -p "$WORK"

can_drop=0
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    can_drop=1
else
    log "cannot drop the page cache (not root?): figures are warm-cache figures"
fi
drop_caches() {
    if [[ $can_drop -eq 1 ]]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

# Seconds taken by "$@" (stdout to /dev/null), or "fail".
elapsed() {
    local t0 t1
    t0=$EPOCHREALTIME
    if ! "$@" >/dev/null; then
        echo fail
        return
    fi
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
median() { printf '%s\n' "$@" | grep -v fail | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "fail"; else print a[int((NR + 1) / 2)] }'; }

if [[ "${1:-}" == --sparse-2t ]]; then
    IMAGE="$WORK/sparse-2t.img"
    if [[ ! -f "$IMAGE" ]]; then
        log "forging $IMAGE (healthy VMFS6, 2T)"
        "$BIN" forge --scenario healthy --version 6 --size 2T "$IMAGE" >/dev/null
    fi
    rm -rf "$WORK/state-2t"
    drop_caches
    t0=$EPOCHREALTIME
    line="$("$BIN" scan "$IMAGE" --state "$WORK/state-2t")"
    t1=$EPOCHREALTIME
    echo "image: $IMAGE ($(stat -c %s "$IMAGE") bytes, $(du -B1 "$IMAGE" | cut -f1) allocated)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "scan wall time: %.2f s\n", b - a }'
    echo "$line"
    exit 0
fi

IMAGE="${1:-}"
if [[ -z "$IMAGE" ]]; then
    IMAGE="$WORK/dense-4g.img"
    if [[ ! -f "$IMAGE" ]]; then
        forged="$WORK/healthy5-16g.img"
        log "forging $forged (healthy VMFS5, 16G, full-size guests)"
        "$BIN" forge --scenario healthy --version 5 --size 16G "$forged" >/dev/null
        log "writing $IMAGE: the forged image's data ranges, repeated, 4 GiB, no holes"
        python3 - "$forged" "$IMAGE.partial" <<'PY'
import os, sys
src, dst, want = sys.argv[1], sys.argv[2], 4 << 30
fd = os.open(src, os.O_RDONLY)
size = os.fstat(fd).st_size
ranges, pos = [], 0
while pos < size:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    ranges.append((d, h))
    pos = h
with open(dst, "wb") as out:
    done = 0
    while done < want:
        for d, h in ranges:
            p = d
            while p < h and done < want:
                n = min(8 << 20, h - p, want - done)
                out.write(os.pread(fd, n, p))
                p += n
                done += n
    out.flush()
    os.fsync(out.fileno())
PY
        mv "$IMAGE.partial" "$IMAGE"
        rm -f "$forged" "$forged.truth.json"
    fi
fi
[[ -f "$IMAGE" || -b "$IMAGE" ]] || { log "no such image: $IMAGE"; exit 1; }
if [[ -b "$IMAGE" ]]; then SIZE=$(blockdev --getsize64 "$IMAGE"); else SIZE=$(stat -c %s "$IMAGE"); fi

run_cat() { cat "$IMAGE"; }
run_dd() { dd if="$IMAGE" of=/dev/null bs=8M status=none; }
run_scan() {
    rm -rf "$WORK/state"
    "$BIN" scan "$IMAGE" --state "$WORK/state" >"$WORK/scan-summary.txt"
}

# This VM's cold reads alternate between a fast and a slow phase on every run, whatever reads
# (cat alone: 1.5 s then 3.3 s, its system time 0.4 s then 2.5 s: page allocation, not the
# disk). So each round runs the methods forward, then backward: every method gets one run of
# each parity, and its round time is the mean of the two.
declare -A RUNS PAIRS
for ((round = 1; round <= ROUNDS; round++)); do
    declare -A FIRST=()
    for method in cat dd scan scan dd cat; do
        drop_caches
        t="$(elapsed "run_$method")"
        RUNS[$method]+=" $t"
        if [[ -z "${FIRST[$method]:-}" ]]; then
            FIRST[$method]="$t"
        elif [[ "$t" == fail || "${FIRST[$method]}" == fail ]]; then
            PAIRS[$method]+=" fail"
        else
            PAIRS[$method]+=" $(awk -v a="${FIRST[$method]}" -v b="$t" 'BEGIN { printf "%.3f", (a + b) / 2 }')"
        fi
    done
    unset FIRST
done
mbps() { awk -v n="$SIZE" -v s="$1" 'BEGIN { printf "%.1f", (s > 0 ? n / 1e6 / s : 0) }'; }
best() { printf '%s\n' "$@" | grep -v fail | sort -n | head -1; }
declare -A T B
echo "image: $IMAGE ($SIZE bytes), $ROUNDS cold rounds (forward and backward), medians of round means"
for method in cat dd scan; do
    # shellcheck disable=SC2086 # word splitting of the run lists is intended
    T[$method]="$(median ${PAIRS[$method]})"
    # shellcheck disable=SC2086
    B[$method]="$(best ${RUNS[$method]})"
    printf '%-5s %8s s  %8s MB/s   best %6s s %8s MB/s   (runs:%s)\n' "$method" "${T[$method]}" \
        "$(mbps "${T[$method]}")" "${B[$method]}" "$(mbps "${B[$method]}")" "${RUNS[$method]}"
done
awk -v c="${T[cat]}" -v s="${T[scan]}" 'BEGIN { printf "scan/cat throughput ratio: %.2f\n", (s > 0 ? c / s : 0) }'
awk -v c="${B[cat]}" -v s="${B[scan]}" 'BEGIN { printf "scan/cat throughput ratio, best runs: %.2f\n", (s > 0 ? c / s : 0) }'
echo "last scan: $(cat "$WORK/scan-summary.txt")"
