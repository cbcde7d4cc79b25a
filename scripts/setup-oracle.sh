#!/usr/bin/env bash
# Create (idempotently) the Python venv that holds dissect.vmfs, the independent VMFS reader
# that tests/oracle/vmfs_list.py uses.
#
#   scripts/setup-oracle.sh          create or check the venv; prints its python on stdout
#
# Where: ${VMFS_RESCUE_VENV:-<repo>/target/oracle-venv}. Packages come from PyPI, pinned.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VMFS_RESCUE_VENV:-$REPO/target/oracle-venv}"
PY="$VENV/bin/python"

# dissect.vmfs 3.13 is the version the corpus manifest was made with; its dependencies are
# pinned to what it resolved to when this was written.
PINS=(dissect.vmfs==3.13 dissect.cstruct==4.7 dissect.util==3.24)

log() { echo "setup-oracle: $*" >&2; }

ready() {
    [[ -x "$PY" ]] && "$PY" - "${PINS[@]}" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import dissect.vmfs.lvm, dissect.vmfs.vmfs  # noqa: E401,F401
PYEOF
}

if ready; then
    log "venv ready at $VENV"
    echo "$PY"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null; then
    log "no $PYTHON; installing python3-venv with apt-get"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    log "python venv/ensurepip missing; installing python3-venv with apt-get"
    apt-get update -qq && apt-get install -y -qq python3-venv >&2
fi

log "creating venv at $VENV"
if [[ -e "$VENV" ]]; then
    # Replace only what is a venv (or empty): never remove a folder we did not make.
    if [[ -f "$VENV/pyvenv.cfg" ]] || [[ -z "$(ls -A "$VENV")" ]]; then
        rm -rf "$VENV"
    else
        log "$VENV exists and is not a venv; refusing to replace it"
        exit 1
    fi
fi
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet --disable-pip-version-check --no-input "${PINS[@]}" >&2
if ! ready; then
    log "venv at $VENV does not import dissect.vmfs after install"
    exit 1
fi
log "venv ready at $VENV"
echo "$PY"
