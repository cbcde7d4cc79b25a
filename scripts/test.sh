#!/usr/bin/env bash
# The project's test command: format, lints, every cargo test, then the dissect.vmfs oracle.
#
#   bash scripts/test.sh
#
# The corpus comes from VMFS_RESCUE_CORPUS, else ../shared/corpus beside the repo if present
# (corpus tests skip without it, except in CI). The oracle step needs the venv made by
# scripts/setup-oracle.sh and is skipped, loudly, when it cannot be created.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

step() { printf '\n==> %s\n' "$*"; }

if [[ -z "${VMFS_RESCUE_CORPUS:-}" && -d "$REPO/../shared/corpus" ]]; then
    VMFS_RESCUE_CORPUS="$(cd "$REPO/../shared/corpus" && pwd)"
    export VMFS_RESCUE_CORPUS
fi
echo "test.sh: corpus ${VMFS_RESCUE_CORPUS:-<none>}"

step "system tools (scripts/setup-tools.sh)"
bash scripts/setup-tools.sh

# The independent reader (dissect.vmfs) first, so the cargo tests that cross-check with it run.
if [[ -n "${VMFS_RESCUE_CORPUS:-}" ]]; then
    step "oracle venv (scripts/setup-oracle.sh)"
    if VENV_PY="$(bash scripts/setup-oracle.sh)"; then
        VMFS_RESCUE_VENV="$(dirname "$(dirname "$VENV_PY")")"
        export VMFS_RESCUE_VENV
        echo "test.sh: oracle venv $VMFS_RESCUE_VENV"
    else
        echo "test.sh: the dissect.vmfs venv could not be created; oracle cross-checks will be skipped"
    fi
fi

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets"
cargo test --all-targets

# ---------------------------------------------------------------------------------------------
# Oracle: dissect.vmfs lists every VMFS image of the corpus. Its listing must equal the corpus
# manifest (which checks the oracle itself), and, once `vmfs-rescue ls --json` exists, ours.
step "oracle: dissect.vmfs over the corpus"
if [[ -z "${VMFS_RESCUE_CORPUS:-}" ]]; then
    echo "SKIP oracle: no corpus (set VMFS_RESCUE_CORPUS)"
    exit 0
fi
if ! PY="$(bash scripts/setup-oracle.sh)"; then
    echo "SKIP oracle: the dissect.vmfs venv could not be created (scripts/setup-oracle.sh)"
    exit 0
fi

MANIFEST="$VMFS_RESCUE_CORPUS/vmfs/manifest.json"
CACHE="${VMFS_RESCUE_CACHE:-$REPO/target/corpus-cache}"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/vmfs-rescue"
OUT="${CARGO_TARGET_DIR:-$REPO/target}/oracle"
mkdir -p "$CACHE" "$OUT"

# The decompressed, sparse image of corpus file REL, cached under the same name as
# tests/integration/util.rs uses (so both share the cache).
image() {
    local rel="vmfs/$1"
    local name="${rel%.gz}"
    local out="$CACHE/${name//\//__}"
    if [[ ! -f "$out" ]]; then
        # cp reads the pipe through /dev/stdin, and keeps the zero runs as holes.
        # shellcheck disable=SC2216
        gzip -dc "$VMFS_RESCUE_CORPUS/$rel" | cp --sparse=always /dev/stdin "$out.partial"
        mv "$out.partial" "$out"
    fi
    echo "$out"
}

# Does our CLI have `ls --json` yet? (Until then the comparison is skipped, not failed.)
# With `cat`, every regular file's content is hashed and compared too.
ours_ready=0
ls_args=(ls --json)
cat_args=()
if [[ -x "$BIN" ]] && "$BIN" ls --help 2>/dev/null | grep -q -- '--json'; then
    ours_ready=1
    if "$BIN" ls --help | grep -q -- '--recursive'; then
        ls_args+=(--recursive)
    fi
    if "$BIN" cat --help 2>/dev/null | grep -q -- '--path'; then
        cat_args=(--ours-cat "$BIN")
    else
        echo "note: vmfs-rescue cat not available yet: contents are not compared"
    fi
else
    echo "note: vmfs-rescue ls --json not available yet: comparing dissect.vmfs with the manifest only"
fi

# Every VMFS image of the manifest: "label rel [rel2]" per line.
mapfile -t CASES < <("$PY" - "$MANIFEST" <<'PYEOF'
import json, sys
for item in json.load(open(sys.argv[1])):
    if item.get("kind") == "vmfs":
        rels = [f["path"] for f in item["image_files"]]
        label = rels[0].rsplit("/", 1)[-1].removesuffix(".bin.gz")
        print(label, *rels)
PYEOF
)

passed=0
failed=()
for case in "${CASES[@]}"; do
    read -r -a parts <<<"$case"
    label="${parts[0]}"
    images=()
    for rel in "${parts[@]:1}"; do
        images+=("$(image "$rel")")
    done
    ok=1
    if ! "$PY" tests/oracle/vmfs_list.py "${images[@]}" --hash \
        --manifest "$MANIFEST" --manifest-image "${parts[1]}" >"$OUT/$label.manifest-diff" 2>&1; then
        ok=0
        echo "--- $label: dissect.vmfs differs from the manifest:"
        head -n 40 "$OUT/$label.manifest-diff"
    fi
    if [[ $ours_ready -eq 1 ]]; then
        if "$BIN" "${ls_args[@]}" "${images[@]}" >"$OUT/$label.ours.jsonl" 2>"$OUT/$label.ours.err" &&
            "$PY" tests/oracle/vmfs_list.py "${images[@]}" --hash --compare "$OUT/$label.ours.jsonl" \
                "${cat_args[@]}" >"$OUT/$label.diff" 2>&1; then
            :
        else
            ok=0
            echo "--- $label: vmfs-rescue ls --json differs from dissect.vmfs:"
            head -n 40 "$OUT/$label.ours.err" "$OUT/$label.diff" 2>/dev/null || true
        fi
    fi
    if [[ $ok -eq 1 ]]; then
        passed=$((passed + 1))
        if [[ $ours_ready -eq 1 ]]; then
            echo "oracle $label: ok (manifest, vmfs-rescue ${ls_args[*]}${cat_args:+ and cat})"
        else
            echo "oracle $label: ok (manifest)"
        fi
    else
        failed+=("$label")
    fi
done

echo "oracle: ${passed} passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "oracle failures: ${failed[*]} (outputs in $OUT)"
    exit 1
fi
