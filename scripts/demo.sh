#!/usr/bin/env bash
# The README's "run" command: build vmfs-rescue and run `vmfs-rescue demo`, which forges a small
# damaged VMFS6 datastore (a healthy VM, a deleted VM, a broken snapshot chain) in a temporary
# folder and shows what vmfs-rescue finds on it. Extra arguments go to `demo` (e.g. --dir DIR).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup-tools.sh"
cargo build --quiet --manifest-path "$repo/Cargo.toml"
exec "${CARGO_TARGET_DIR:-$repo/target}/debug/vmfs-rescue" demo "$@"
