#!/usr/bin/env bash
# Run every cargo-fuzz target for a short while; fail if any of them crashes.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]      (default 30)
#
# Targets are whatever `cargo fuzz list --fuzz-dir tests/fuzz` lists, so a new target runs here
# as soon as it has its [[bin]] in tests/fuzz/Cargo.toml (the parsers, the readers, and net_parse:
# the NBD option/request parsing and the HTTP Range header of the network exports). Each run uses -max_len=4096 unless
# the target's source has a line
#     // fuzz-smoke: -max_len=65536 [more libFuzzer flags]
# whose flags are appended (later flags win). Seeds in tests/fuzz/seeds/<target>/, if any, are
# read as well as the working corpus tests/fuzz/corpus/<target>/ (ignored by git).
#
# cargo-fuzz is installed from crates.io when missing. It needs -Z flags (sanitizers); with no
# nightly toolchain, RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SECS="${1:-30}"
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || [[ "$SECS" -lt 1 ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

FUZZ_DIR=tests/fuzz
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TARGET_DIR="${VMFS_RESCUE_FUZZ_TARGET_DIR:-$REPO/$FUZZ_DIR/target}"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "fuzz-smoke: $*"; }

# --- cargo-fuzz, installed once into ~/.cargo/bin ---
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
log "$(cargo fuzz --version), $(rustc --version), RUSTC_BOOTSTRAP=$RUSTC_BOOTSTRAP"

mapfile -t TARGETS < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    log "no fuzz targets in $FUZZ_DIR"
    exit 1
fi
log "targets: ${TARGETS[*]} (${SECS}s each)"

# One build for all targets (sanitizer + coverage instrumentation, release, debug assertions).
cargo fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_TARGET_DIR"

passed=0
failed=()
for t in "${TARGETS[@]}"; do
    src="$FUZZ_DIR/fuzz_targets/$t.rs"
    extra=()
    if [[ -f "$src" ]]; then
        line="$(sed -n 's|^// fuzz-smoke:[[:space:]]*||p' "$src" | head -n 1)"
        # Word-split on purpose: the line holds libFuzzer flags.
        read -r -a extra <<<"$line"
    fi
    corpus="$FUZZ_DIR/corpus/$t"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [[ -d "$FUZZ_DIR/seeds/$t" ]] && dirs+=("$FUZZ_DIR/seeds/$t")
    log "run $t for ${SECS}s ${extra[*]:-}"
    log_file="$(mktemp)"
    if cargo fuzz run --fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_TARGET_DIR" "$t" "${dirs[@]}" -- \
        -max_total_time="$SECS" -max_len=4096 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        "${extra[@]}" >"$log_file" 2>&1; then
        passed=$((passed + 1))
        log "$t: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log_file" | grep -o '[0-9]*$' || echo '?') runs)"
    else
        failed+=("$t")
        tail -n 80 "$log_file"
        log "$t: FAILED; artifacts in $FUZZ_DIR/artifacts/$t/"
    fi
    rm -f "$log_file"
done

echo "fuzz-smoke: ${passed} passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
    log "failed targets: ${failed[*]}"
    exit 1
fi
