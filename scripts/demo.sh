#!/usr/bin/env bash
# Build vmfs-rescue and run it on a demo datastore: list the volume, the files, and extract one VM.
# Until the forge (issue 3) generates demo datastores, the demo uses the real ESXi-made VMFS6
# sample of the corpus (VMFS_RESCUE_CORPUS, or ../shared/corpus next to this repository).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=${VMFS_RESCUE_CORPUS:-$repo/../shared/corpus}
[ -d "$corpus/vmfs" ] || { echo "demo: no corpus at $corpus (set VMFS_RESCUE_CORPUS)" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin=$repo/target/release/vmfs-rescue
work=$repo/target/demo
mkdir -p "$work"
img=$work/vmfs6.bin
if [ ! -f "$img" ]; then
  gzip -dc "$corpus/vmfs/dissect.vmfs-3.13/vmfs/vmfs6.bin.gz" | cp --sparse=always /dev/stdin "$img.partial"
  mv "$img.partial" "$img"
fi
echo "== vmfs-rescue volumes $img"
"$bin" volumes "$img"
echo "== vmfs-rescue ls -R $img"
"$bin" ls -R "$img" | grep -v '/directory/file[0-9]*[1-9]$' 
echo "== vmfs-rescue extract $img --to $work/out"
rm -rf "$work/out"
"$bin" extract "$img" --to "$work/out" --path /normal.vmdk --path /normal-flat.vmdk --path /bigger --path /directory
du -sh --apparent-size "$work/out/normal-flat.vmdk"; du -sh "$work/out/normal-flat.vmdk"
echo "manifest: $work/out/manifest.json"
