#!/usr/bin/env bash
# `vmfs-rescue vdisk convert` against `qemu-img convert`, to raw and to qcow2, same inputs, same run.
#
#   scripts/bench-vdisk.sh
#
# Builds release, generates (once; kept in the work dir) with qemu-img/qemu-io:
#   sparse  a 4 GiB monolithicSparse VMDK, ~90% allocated (random and patterned 64 MiB chunks)
#   stream  the same content as streamOptimized
#   chain   base monolithicSparse + 2 hosted-sparse children overwriting scattered ranges
# then, per input and output format, ROUNDS interleaved rounds of ours and qemu-img (outputs:
# sparse raw files or qcow2 images in the work dir, removed before each timed run), prints the
# medians, the ratio ours/qemu and MB/s (10^6 bytes/s) of the virtual size. Fails if the two
# outputs differ in content (cmp for raw; qemu-img compare for qcow2, and our qcow2 must pass
# qemu-img check). Ours also hashes the content (SHA-256) and syncs its output before renaming it
# into place; qemu-img (cache mode "unsafe" by default) does neither, so the time of a
# `sync OUT` after it is shown too (qemu+sync_s; the ratio is ours / qemu+sync).
# Nothing asserts a time. Page cache is dropped before each run when allowed, else "warm cache".
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_VDISK_BENCH_DIR (default <target>/bench-vdisk),
# ROUNDS (default 3), BENCH_INPUTS (default "sparse stream chain"), BENCH_FORMATS (default
# "raw qcow2").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-data.sh
. "$REPO/scripts/bench-data.sh"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET/release/vmfs-rescue"
WORK="${VMFS_RESCUE_VDISK_BENCH_DIR:-$TARGET/bench-vdisk}"
ROUNDS="${ROUNDS:-3}"
INPUTS="${BENCH_INPUTS:-sparse stream chain}"
FORMATS="${BENCH_FORMATS:-raw qcow2}"
SIZE=$((4 << 30))

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
    make_bench_raw "$raw" "$SIZE"
    log "qemu-img convert -> monolithicSparse, streamOptimized"
    qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$WORK/sparse.vmdk.tmp"
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$WORK/stream.vmdk"
    rm -f "$raw"
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

declare -A T SHA RAWT RAWB SZ
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
    for fmt in $FORMATS; do
        ours=() qemu=() qsync=()
        for ((r = 1; r <= ROUNDS; r++)); do
            for tool in ours qemu; do
                out="$WORK/out-$name-$tool.$fmt"
                rm -f "$out"
                drop_caches
                t0=$(now)
                if [[ $tool == ours ]]; then
                    "$BIN" vdisk convert "$in" --to "$out" --format "$fmt" >"$WORK/out-$name-ours-$fmt.log"
                else
                    qemu-img convert -O "$fmt" "$in" "$out"
                fi
                t1=$(now)
                t="$(echo "$t1 - $t0" | bc -l)"
                log "$name -> $fmt round $r $tool: ${t}s"
                if [[ $tool == ours ]]; then
                    ours+=("$t")
                else
                    qemu+=("$t")
                    sync "$out"
                    t2=$(now)
                    qsync+=("$(echo "$t2 - $t0" | bc -l)")
                fi
            done
            a="$WORK/out-$name-ours.$fmt" b="$WORK/out-$name-qemu.$fmt"
            if [[ $fmt == raw ]]; then
                if ! cmp -s "$a" "$b"; then
                    log "$name: raw outputs DIFFER"
                    cmp "$a" "$b" | head -1 >&2 || true
                    exit 1
                fi
            else
                qemu-img check -q "$a" || { log "$name: qemu-img check fails on our $fmt"; exit 1; }
                qemu-img compare -q -f "$fmt" "$a" -F "$fmt" "$b" || { log "$name: $fmt outputs DIFFER"; exit 1; }
            fi
        done
        T[$name.$fmt.ours]="$(median "${ours[@]}")"
        T[$name.$fmt.qemu]="$(median "${qemu[@]}")"
        T[$name.$fmt.qsync]="$(median "${qsync[@]}")"
        SZ[$name.$fmt.ours]="$(du -B1 "$WORK/out-$name-ours.$fmt" | cut -f1)"
        SZ[$name.$fmt.qemu]="$(du -B1 "$WORK/out-$name-qemu.$fmt" | cut -f1)"
        [[ $fmt == raw ]] && SHA[$name]="$(sha256sum "$WORK/out-$name-qemu.raw" | cut -d' ' -f1)"
        SHA[$name.$fmt.ours]="$(grep -oiE '[0-9a-f]{64}' "$WORK/out-$name-ours-$fmt.log" | head -1 || true)"
        rm -f "$WORK/out-$name-ours.$fmt" "$WORK/out-$name-qemu.$fmt"
    done
done

# ---- figures ------------------------------------------------------------------------------------
mbps() { echo "scale=1; $1 / 1000000 / $2" | bc -l; }
echo "vdisk convert vs qemu-img convert: $ROUNDS interleaved rounds, medians, $CACHE cache"
printf '%-7s %-6s %9s %9s %14s %7s %10s %10s %12s %12s %12s\n' input format ours_s qemu_s qemu+sync_s ratio \
    ours_MB/s qemu_MB/s ours_bytes qemu_bytes cat_in_MB/s
for name in $INPUTS; do
    for fmt in $FORMATS; do
        o="${T[$name.$fmt.ours]}" q="${T[$name.$fmt.qemu]}" qs="${T[$name.$fmt.qsync]}"
        printf '%-7s %-6s %9.2f %9.2f %14.2f %7.2f %10s %10s %12s %12s %12s\n' "$name" "$fmt" "$o" "$q" "$qs" \
            "$(echo "$o / $qs" | bc -l)" "$(mbps $SIZE "$o")" "$(mbps $SIZE "$qs")" \
            "${SZ[$name.$fmt.ours]}" "${SZ[$name.$fmt.qemu]}" "$(mbps "${RAWB[$name]:-0}" "${RAWT[$name]}")"
    done
done
echo "(MB/s of the virtual size, qemu's with its sync; ours_bytes, qemu_bytes: disk space the outputs take)"
for name in $INPUTS; do
    for fmt in $FORMATS; do
        echo "$name -> $fmt: sha256 printed by ours ${SHA[$name.$fmt.ours]:-none}; qemu raw output ${SHA[$name]:-not made}"
    done
done
