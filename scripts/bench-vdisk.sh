#!/usr/bin/env bash
# `vmfs-rescue vdisk convert` against `qemu-img convert -O raw`, same inputs, same run.
#
#   scripts/bench-vdisk.sh
#
# Builds release, generates (once; kept in the work dir) with qemu-img/qemu-io:
#   sparse  a 4 GiB monolithicSparse VMDK, ~90% allocated (random and patterned 64 MiB chunks)
#   stream  the same content as streamOptimized
#   chain   base monolithicSparse + 2 hosted-sparse children overwriting scattered ranges
# then, per input, ROUNDS interleaved rounds of ours and qemu-img (outputs: sparse raw files
# in the work dir, removed before each timed run), prints the medians, the ratio ours/qemu
# and MB/s (10^6 bytes/s) of the virtual size. Fails if the two outputs differ in content.
# Nothing asserts a time. Page cache is dropped before each run when allowed, else "warm cache".
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_VDISK_BENCH_DIR (default <target>/bench-vdisk),
# ROUNDS (default 3), BENCH_INPUTS (default "sparse stream chain").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET/release/vmfs-rescue"
WORK="${VMFS_RESCUE_VDISK_BENCH_DIR:-$TARGET/bench-vdisk}"
ROUNDS="${ROUNDS:-3}"
INPUTS="${BENCH_INPUTS:-sparse stream chain}"
SIZE=$((4 << 30))
CHUNK=$((64 << 20))

log() { echo "bench: $*" >&2; }
for t in qemu-img qemu-io openssl sha256sum cmp; do
    command -v "$t" >/dev/null || { log "needs $t"; exit 1; }
done

log "cargo build --release"
cargo build --release --quiet
mkdir -p "$WORK"

# ---- inputs ---------------------------------------------------------------------------------
if [[ ! -f "$WORK/sparse.vmdk" ]]; then
    log "generating a 4 GiB raw source (~90% allocated)"
    raw="$WORK/source.raw"
    rm -f "$raw"
    truncate -s "$SIZE" "$raw"
    openssl rand -out "$WORK/rand.bin" "$CHUNK"
    n=$((SIZE / CHUNK))
    for ((i = 0; i < n; i++)); do
        ((i % 10 == 7)) && continue # ~10% left as holes
        if ((i % 2 == 0)); then
            # random bytes (does not compress), rotated so that chunks differ
            { tail -c +$((i * 4096 + 1)) "$WORK/rand.bin"; head -c $((i * 4096)) "$WORK/rand.bin"; } |
                dd of="$raw" bs=1M seek=$((i * 64)) conv=notrunc iflag=fullblock status=none
        else
            # patterned bytes (compress well)
            head -c "$CHUNK" /dev/zero | tr '\0' "\\$(printf '%03o' $((i % 255 + 1)))" |
                dd of="$raw" bs=1M seek=$((i * 64)) conv=notrunc iflag=fullblock status=none
        fi
    done
    log "qemu-img convert -> monolithicSparse, streamOptimized"
    qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$WORK/sparse.vmdk.tmp"
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$WORK/stream.vmdk"
    rm -f "$raw" "$WORK/rand.bin"
    mv "$WORK/sparse.vmdk.tmp" "$WORK/sparse.vmdk"
fi
if [[ ! -f "$WORK/chain-child2.vmdk" ]]; then
    log "generating the 3-level chain"
    rm -f "$WORK"/chain-*.vmdk
    cp --sparse=always "$WORK/sparse.vmdk" "$WORK/chain-base.vmdk"
    for level in 1 2; do
        # Created after its parent's writes: qemu changes a link's CID on its first write, and
        # refuses to write to a child whose parentCID no longer matches.
        parent=chain-child$((level - 1)).vmdk
        ((level == 1)) && parent=chain-base.vmdk
        (cd "$WORK" && qemu-img create -q -f vmdk -b "$parent" -F vmdk "chain-child$level.vmdk")
        args=()
        for ((k = 0; k < 200; k++)); do
            # scattered writes, 4 KiB..2 MiB, some unaligned to the 64 KiB grain
            off=$(((k * 2654435761 + level * 97) % (SIZE / 4096 - 1024) * 4096 + (k % 3) * 512))
            len=$((((k * 37 + level) % 512 + 1) * 4096))
            args+=(-c "write -P 0x$(printf '%02x' $(((k + level * 50) % 254 + 1))) $off $len")
        done
        qemu-io -f vmdk "${args[@]}" "$WORK/chain-child$level.vmdk" >/dev/null
    done
fi

# ---- cache --------------------------------------------------------------------------------------
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    CACHE=cold
    drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
else
    CACHE=warm
    drop_caches() { :; }
fi
log "page cache: $CACHE"

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END { print a[int((NR + 1) / 2)] }'; }
input_of() { case "$1" in chain) echo "$WORK/chain-child2.vmdk" ;; *) echo "$WORK/$1.vmdk" ;; esac; }
files_of() { case "$1" in chain) echo "$WORK"/chain-*.vmdk ;; *) echo "$WORK/$1.vmdk" ;; esac; }

declare -A T SHA RAWT RAWB
for name in $INPUTS; do
    in="$(input_of "$name")"
    # raw read speed of the input files, for context
    drop_caches
    t0=$(now)
    # shellcheck disable=SC2046
    cat $(files_of "$name") >/dev/null
    t1=$(now)
    RAWT[$name]="$(echo "$t1 - $t0" | bc -l)"
    # shellcheck disable=SC2046
    RAWB[$name]="$(du -cb --apparent-size $(files_of "$name") | tail -1 | cut -f1)" 2>/dev/null || true
    ours=() qemu=()
    for ((r = 1; r <= ROUNDS; r++)); do
        for tool in ours qemu; do
            out="$WORK/out-$name-$tool.raw"
            rm -f "$out"
            drop_caches
            t0=$(now)
            if [[ $tool == ours ]]; then
                "$BIN" vdisk convert "$in" --to "$out" >"$WORK/out-$name-ours.log"
            else
                qemu-img convert -O raw "$in" "$out"
            fi
            t1=$(now)
            t="$(echo "$t1 - $t0" | bc -l)"
            log "$name round $r $tool: ${t}s"
            if [[ $tool == ours ]]; then ours+=("$t"); else qemu+=("$t"); fi
        done
        if ! cmp -s "$WORK/out-$name-ours.raw" "$WORK/out-$name-qemu.raw"; then
            log "$name: outputs DIFFER"
            cmp "$WORK/out-$name-ours.raw" "$WORK/out-$name-qemu.raw" | head -1 >&2 || true
            exit 1
        fi
    done
    T[$name.ours]="$(median "${ours[@]}")"
    T[$name.qemu]="$(median "${qemu[@]}")"
    SHA[$name]="$(sha256sum "$WORK/out-$name-qemu.raw" | cut -d' ' -f1)"
    SHA[$name.ours]="$(grep -oiE '[0-9a-f]{64}' "$WORK/out-$name-ours.log" | head -1 || true)"
    rm -f "$WORK/out-$name-ours.raw" "$WORK/out-$name-qemu.raw"
done

# ---- figures ------------------------------------------------------------------------------------
mbps() { echo "scale=1; $1 / 1000000 / $2" | bc -l; }
echo "vdisk convert vs qemu-img convert -O raw: $ROUNDS interleaved rounds, medians, $CACHE cache"
printf '%-7s %10s %10s %7s %10s %10s %12s\n' input ours_s qemu_s ratio ours_MB/s qemu_MB/s cat_in_MB/s
for name in $INPUTS; do
    o="${T[$name.ours]}" q="${T[$name.qemu]}"
    printf '%-7s %10.2f %10.2f %7.2f %10s %10s %12s\n' "$name" "$o" "$q" "$(echo "$o / $q" | bc -l)" \
        "$(mbps $SIZE "$o")" "$(mbps $SIZE "$q")" "$(mbps "${RAWB[$name]:-0}" "${RAWT[$name]}")"
done
for name in $INPUTS; do
    echo "$name sha256 (qemu output, cmp-identical to ours): ${SHA[$name]}; ours printed: ${SHA[$name.ours]:-none}"
done
