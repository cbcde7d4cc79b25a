#!/usr/bin/env bash
# Extraction throughput against a raw read of the same bytes, in the same run.
#
#   scripts/bench-extract.sh [IMAGE] [PATH]
#
# Builds release, then times, cold (page cache dropped, when allowed) and warm:
#   (a) dd of the file's byte count from the image, starting where the file's first block lies
#   (b) vmfs-rescue cat IMAGE --path PATH > /dev/null
#   (c) vmfs-rescue extract IMAGE --to DIR --path PATH
# and prints MB/s (10^6 bytes per second) for each and the ratios to (a). Nothing asserts a time.
#
# Without IMAGE: `vmfs-rescue forge bench-image OUT` makes one when the CLI has it (see HOOK
# below); otherwise the corpus vmfs5 image (decompressed into the test cache) and its /bigger
# (128 MiB, fully allocated) are used. PATH defaults to the forged image's file or /bigger.
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_CORPUS (default ../shared/corpus),
# VMFS_RESCUE_CACHE (default target/corpus-cache), VMFS_RESCUE_BENCH_DIR (default
# <target>/bench: extraction output and forged images go there).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET/release/vmfs-rescue"
WORK="${VMFS_RESCUE_BENCH_DIR:-$TARGET/bench}"
IMAGE="${1:-}"
FPATH="${2:-}"

log() { echo "bench: $*" >&2; }

log "cargo build --release"
cargo build --release --quiet
mkdir -p "$WORK"

# Does the CLI have subcommand $1 (with $2 in its help, if given)?
has_cmd() {
    local help
    help="$("$BIN" "$1" --help 2>/dev/null)" || return 1
    [[ -n "$help" ]] && { [[ -z "${2:-}" ]] || grep -q -- "$2" <<<"$help"; }
}

if [[ -z "$IMAGE" ]]; then
    # ---- HOOK (forge): the benchmark image ------------------------------------------------
    # When the CLI has `forge bench-image OUT`, it writes a (sparse) benchmark volume to OUT
    # and may print the path of its big, fully allocated file as the last line of stdout
    # (default /bench). Until then, the corpus vmfs5 image and /bigger stand in.
    if has_cmd forge bench-image; then
        IMAGE="$WORK/bench-image.bin"
        rm -f "$IMAGE"
        log "forging $IMAGE"
        forged_path="$("$BIN" forge bench-image "$IMAGE" | tail -n 1)"
        [[ "$forged_path" == /* ]] || forged_path=/bench
        FPATH="${FPATH:-$forged_path}"
    else
        corpus="${VMFS_RESCUE_CORPUS:-$REPO/../shared/corpus}"
        rel="vmfs/dissect.vmfs-3.13/vmfs/vmfs5.bin.gz"
        [[ -f "$corpus/$rel" ]] || { log "no forge and no corpus at $corpus: give IMAGE"; exit 1; }
        cache="${VMFS_RESCUE_CACHE:-$REPO/target/corpus-cache}"
        name="${rel%.gz}"
        IMAGE="$cache/${name//\//__}"
        if [[ ! -f "$IMAGE" ]]; then
            mkdir -p "$cache"
            log "decompressing $rel into $cache"
            # cp reads the pipe through /dev/stdin, and keeps the zero runs as holes.
            # shellcheck disable=SC2216
            gzip -dc "$corpus/$rel" | cp --sparse=always /dev/stdin "$IMAGE.partial"
            mv "$IMAGE.partial" "$IMAGE"
        fi
        # A 1 GiB fully allocated file made from it (examples/bench_image.rs).
        cargo build --release --quiet --example bench_image
        log "making a 1 GiB allocated file in a copy of $IMAGE"
        read -r FPATH OFFSET_HINT < <("$TARGET/release/examples/bench_image" "$IMAGE" "$WORK/bench-vmfs5.bin")
        IMAGE="$WORK/bench-vmfs5.bin"
    fi
fi
FPATH="${FPATH:-/bigger}"
[[ -f "$IMAGE" || -b "$IMAGE" ]] || { log "no such image: $IMAGE"; exit 1; }

# ---- size and first-block offset of PATH --------------------------------------------------
# From dissect.vmfs (the oracle venv) when it can be set up; `vmfs-rescue ls --json` gives the
# size once it exists. The dd baseline reads SIZE bytes from the file's first block on, which
# equals the file's bytes when the file is contiguous (as /bigger is).
SIZE=""
OFFSET=${OFFSET_HINT:-0}
if PY="$(bash scripts/setup-oracle.sh 2>/dev/null)"; then
    if loc="$("$PY" tests/oracle/vmfs_list.py "$IMAGE" --locate "$FPATH")"; then
        read -r SIZE OFFSET < <("$PY" -c 'import json,sys; o=json.load(sys.stdin); print(o["size"], o["offset"] or 0)' <<<"$loc")
    fi
fi
if has_cmd ls --json; then
    ls_size="$("$BIN" ls --json "$IMAGE" 2>/dev/null | python3 -c '
import json, sys
want = sys.argv[1]
for line in sys.stdin:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("path") == want and "size" in o:
        print(o["size"])
        break
' "$FPATH" || true)"
    [[ -n "$ls_size" ]] && SIZE="$ls_size"
fi
if [[ -z "$SIZE" ]]; then
    if [[ "$FPATH" == /bigger ]]; then
        SIZE=$((128 * 1024 * 1024))
    else
        log "cannot tell the size of $FPATH (no oracle venv, no ls --json)"
        exit 1
    fi
fi
[[ "$OFFSET" -gt 0 ]] || log "first-block offset unknown: dd reads from offset 0 (holes read faster than data)"

# ---- timing ----------------------------------------------------------------------------
can_drop=0
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    can_drop=1
fi
drop_caches() {
    if [[ $can_drop -eq 1 ]]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
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

mbps() {
    if [[ "$1" =~ ^[0-9.]+$ ]]; then
        awk -v n="$SIZE" -v s="$1" 'BEGIN { printf "%.1f", (s > 0 ? n / 1e6 / s : 0) }'
    else
        echo "$1"
    fi
}
ratio() {
    [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]] || { echo n/a; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'
}

# WRAP runs a command inside the throttled cgroup in the disk-speed part (empty otherwise).
WRAP=()
run_dd() { "${WRAP[@]}" dd if="$IMAGE" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="$OFFSET" count="$SIZE" status=none; }
run_cat() { "${WRAP[@]}" "$BIN" cat "$IMAGE" --path "$FPATH"; }
# Like for like with extract: the same bytes written to a file on the same destination, synced.
run_ddcopy() {
    "${WRAP[@]}" dd if="$IMAGE" of="$WORK/ddcopy.out" bs=1M iflag=skip_bytes,count_bytes skip="$OFFSET" count="$SIZE" conv=fsync status=none
}
run_extract() {
    "${WRAP[@]}" "$BIN" extract "$IMAGE" --to "$WORK/extract" --path "$FPATH"
}
# Outputs are removed before each timed run, outside the timing (deleting a 1 GiB file costs
# discards on this file system, which would be charged to the next command otherwise).
clean_outputs() {
    rm -rf "$WORK/extract" "$WORK/ddcopy.out"
    mkdir -p "$WORK/extract"
    sync
    sleep 2
}

have_cat=0
have_extract=0
has_cmd cat && have_cat=1
has_cmd extract && have_extract=1
[[ $have_cat -eq 1 ]] || log "vmfs-rescue cat is not there yet: (b) shows n/a"
[[ $have_extract -eq 1 ]] || log "vmfs-rescue extract is not there yet: (c) shows n/a"

declare -A T
ROUNDS="${VMFS_RESCUE_BENCH_ROUNDS:-5}"
median() { printf '%s\n' "$@" | grep -v fail | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "fail"; else print a[int((NR + 1) / 2)] }'; }
declare -A RUNS
# Rounds interleave the methods so that drifts of a shared machine hit all of them alike;
# each figure is the median of its rounds.
for ((round = 1; round <= ROUNDS; round++)); do
    for method in dd ddcopy cat extract; do
        case $method in
            cat) [[ $have_cat -eq 1 ]] || continue ;;
            extract) [[ $have_extract -eq 1 ]] || continue ;;
        esac
        clean_outputs
        drop_caches
        RUNS[$method.cold]+=" $(elapsed "run_$method")"
        clean_outputs
        RUNS[$method.warm]+=" $(elapsed "run_$method")"
    done
done
for method in dd ddcopy cat extract; do
    for temp in cold warm; do
        # shellcheck disable=SC2086 # word splitting of the run list is intended
        if [[ -n "${RUNS[$method.$temp]:-}" ]]; then T[$method.$temp]="$(median ${RUNS[$method.$temp]})"; else T[$method.$temp]=n/a; fi
    done
done

failed=0
for k in "${!RUNS[@]}"; do
    [[ "${RUNS[$k]}" == *fail* ]] && failed=1
done
if [[ $have_extract -eq 1 && "${T[extract.warm]}" != fail ]]; then
    got="$(find "$WORK/extract" -type f -printf '%s\n' | sort -n | tail -n 1)"
    [[ "$got" == "$SIZE" ]] || log "warning: largest extracted file has ${got:-no} bytes, expected $SIZE"
fi

echo
echo "image:  $IMAGE"
echo "path:   $FPATH ($SIZE bytes; dd from offset $OFFSET)"
if [[ $can_drop -eq 1 ]]; then
    echo "cold:   page cache dropped before each first run"
else
    echo "cold:   page cache could NOT be dropped (not root or no /proc/sys access): cold = first run"
fi
echo "rounds: $ROUNDS, medians shown"
printf '\n%-28s %10s %10s %10s %10s\n' "" "cold s" "cold MB/s" "warm s" "warm MB/s"
for method in dd ddcopy cat extract; do
    case $method in
        dd) label="(a) dd (raw read)" ;;
        ddcopy) label="(a2) dd to a file, fsync" ;;
        cat) label="(b) vmfs-rescue cat" ;;
        extract) label="(c) vmfs-rescue extract" ;;
    esac
    printf '%-28s %10s %10s %10s %10s\n' "$label" "${T[$method.cold]}" "$(mbps "${T[$method.cold]}")" \
        "${T[$method.warm]}" "$(mbps "${T[$method.warm]}")"
done
echo
echo "THROUGHPUT RATIO extract vs dd-to-file (like for like): cold $(ratio "${T[extract.cold]}" "${T[ddcopy.cold]}"), warm $(ratio "${T[extract.warm]}" "${T[ddcopy.warm]}")"
echo "THROUGHPUT RATIO cat vs dd (reads only):                 cold $(ratio "${T[cat.cold]}" "${T[dd.cold]}"), warm $(ratio "${T[cat.warm]}" "${T[dd.warm]}")"
echo "time ratio extract/dd: cold $(ratio "${T[dd.cold]}" "${T[extract.cold]}"), warm $(ratio "${T[dd.warm]}" "${T[extract.warm]}")"
echo "time ratio cat/dd:     cold $(ratio "${T[dd.cold]}" "${T[cat.cold]}"), warm $(ratio "${T[dd.warm]}" "${T[cat.warm]}")"
echo "time ratio extract/cat: cold $(ratio "${T[cat.cold]}" "${T[extract.cold]}"), warm $(ratio "${T[cat.warm]}" "${T[extract.warm]}")"
# --- At the speed of a real datastore disk ---------------------------------------------------
# The image behind a read-only loop device whose reads are throttled (cgroup v1 blkio) to
# DISK_MBPS, as a SAS/SATA disk of a dead host would read: does extraction keep up with the disk?
DISK_MBPS="${VMFS_RESCUE_BENCH_DISK_MBPS:-200}"
CG=/sys/fs/cgroup/blkio/vmfs-rescue-bench
if [[ $DISK_MBPS -gt 0 && $(id -u) -eq 0 && -d /sys/fs/cgroup/blkio && -f "$IMAGE" ]] &&
    LOOP="$(losetup --find --show --read-only "$IMAGE" 2>/dev/null)"; then
    trap 'blockdev --setrw "$LOOP" 2>/dev/null; losetup -d "$LOOP" 2>/dev/null || true' EXIT
    mkdir -p "$CG"
    echo "$(lsblk -dno MAJ:MIN "$LOOP" | tr -d ' ') $((DISK_MBPS * 1000000))" >"$CG/blkio.throttle.read_bps_device"
    in_cg() { bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$CG" "$@"; }
    WRAP=(in_cg)
    SAVED_IMAGE="$IMAGE"
    IMAGE="$LOOP"
    declare -A D
    for ((round = 1; round <= 3; round++)); do
        for method in dd ddcopy cat extract; do
            clean_outputs
            drop_caches
            D[$method]+=" $(elapsed "run_$method")"
        done
    done
    IMAGE="$SAVED_IMAGE"
    WRAP=()
    echo
    echo "at a disk speed of $DISK_MBPS MB/s (loop device, blkio read throttle; cold, median of 3):"
    for method in dd ddcopy cat extract; do
        # shellcheck disable=SC2086 # word splitting of the run list is intended
        t="$(median ${D[$method]})"
        [[ "${D[$method]}" == *fail* ]] && failed=1
        D[$method]="$t"
        printf '  %-26s %8s s %10s MB/s\n' "$method" "$t" "$(mbps "$t")"
    done
    echo "THROUGHPUT RATIO at disk speed, extract vs cat of the same bytes: $(ratio "${D[extract]}" "${D[dd]}") (vs dd to a file: $(ratio "${D[extract]}" "${D[ddcopy]}"))"
else
    log "disk-speed part skipped (needs root, cgroup v1 blkio and a loop device)"
fi

if [[ $failed -eq 1 ]]; then
    log "a command failed (see above)"
    exit 1
fi
