#!/usr/bin/env bash
# `qemu-img convert` of one virtual disk over our NBD export on loopback, against `qemu-img
# convert` of the same disk from the local file, in one run.
#
#   scripts/bench-nbd.sh
#
# Generates (once; kept in the work dir) a 2 GiB monolithicSparse VMDK, ~90% allocated (random
# and patterned 64 MiB chunks, the rest holes). Then ROUNDS interleaved rounds of
#   local  qemu-img convert -f vmdk -O raw disk.vmdk local.raw
#   nbd    qemu-img convert -f raw  -O raw nbd://127.0.0.1:PORT/SECRET/disk.vmdk nbd.raw
# with `vmfs-rescue serve nbd disk.vmdk` serving the same file (our VMDK reader, through the
# BlockSource layer, then the network). Prints the median time and MB/s (10^6 bytes/s of the
# virtual size) of each and the ratio nbd/local (target: at least 0.8). Fails if the two
# outputs differ. Page cache is dropped before each run when allowed, else "warm cache".
#
# Environment: CARGO_TARGET_DIR, PROFILE (release, or dev for a quick look),
# VMFS_RESCUE_NBD_BENCH_DIR (default <target>/bench-nbd), ROUNDS (default 3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-data.sh
. "$REPO/scripts/bench-data.sh"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
PROFILE="${PROFILE:-release}"
if [[ "$PROFILE" == dev ]]; then BIN="$TARGET/debug/vmfs-rescue"; else BIN="$TARGET/$PROFILE/vmfs-rescue"; fi
WORK="${VMFS_RESCUE_NBD_BENCH_DIR:-$TARGET/bench-nbd}"
ROUNDS="${ROUNDS:-3}"
SIZE=$((2 << 30))
SECRET="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

log() { echo "bench-nbd: $*" >&2; }
for t in qemu-img openssl cmp; do
    command -v "$t" >/dev/null || { log "needs $t (scripts/setup-tools.sh)"; exit 1; }
done

log "cargo build --profile $PROFILE"
cargo build --profile "$PROFILE" --quiet
mkdir -p "$WORK"

if [[ ! -f "$WORK/disk.vmdk" ]]; then
    log "generating a 2 GiB monolithicSparse VMDK (~90% allocated)"
    raw="$WORK/source.raw"
    make_bench_raw "$raw" "$SIZE"
    qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$WORK/disk.vmdk"
    rm -f "$raw"
fi

log "serving $WORK/disk.vmdk over NBD"
"$BIN" serve nbd "$WORK/disk.vmdk" --listen 127.0.0.1:0 --secret "$SECRET" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -f "$WORK/local.raw" "$WORK/nbd.raw"
}
trap cleanup EXIT
for _ in $(seq 50); do
    grep -q 'Ctrl-C' "$WORK/serve.out" 2>/dev/null && break
    sleep 0.1
done
ADDR="$(sed -n 's/.*listening on //p' "$WORK/serve.out")"
[[ -n "$ADDR" ]] || { cat "$WORK/serve.err" >&2; log "server did not start"; exit 1; }
URI="nbd://$ADDR/$SECRET/disk.vmdk"

drop_caches() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then CACHE="cold cache"; else CACHE="warm cache"; fi
}

# Seconds (float) a command takes.
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

local_t=()
nbd_t=()
for ((r = 1; r <= ROUNDS; r++)); do
    rm -f "$WORK/local.raw" "$WORK/nbd.raw"
    drop_caches
    local_t+=("$(timed qemu-img convert -f vmdk -O raw "$WORK/disk.vmdk" "$WORK/local.raw")")
    drop_caches
    nbd_t+=("$(timed qemu-img convert -f raw -O raw "$URI" "$WORK/nbd.raw")")
    cmp "$WORK/local.raw" "$WORK/nbd.raw" || { log "outputs differ"; exit 1; }
    log "round $r: local ${local_t[-1]}s, nbd ${nbd_t[-1]}s"
done
lt=$(printf '%s\n' "${local_t[@]}" | median)
nt=$(printf '%s\n' "${nbd_t[@]}" | median)
mbs() { echo "scale=1; $SIZE / $1 / 1000000" | bc -l; }
ratio=$(echo "scale=3; $lt / $nt" | bc -l)
echo "disk: 2 GiB monolithicSparse VMDK, ~90% allocated; $ROUNDS rounds, $CACHE, profile $PROFILE"
printf 'local  qemu-img convert (vmdk file):  %8.3f s  %8s MB/s\n' "$lt" "$(mbs "$lt")"
printf 'nbd    qemu-img convert (loopback):   %8.3f s  %8s MB/s\n' "$nt" "$(mbs "$nt")"
echo "ratio nbd/local: $ratio (target >= 0.8)"
