#!/usr/bin/env bash
# Buildroot post-build script ($1 = TARGET_DIR): the identity /init uses to recognise its own
# boot medium, computed as image/build-initramfs.sh does.
set -euo pipefail
ROOT="$1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
mkdir -p "$ROOT/etc/vmfs-rescue"
echo "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown), Buildroot" >"$ROOT/etc/vmfs-rescue/version"
(cd "$ROOT" && find . -type f ! -path ./etc/vmfs-rescue/image-id -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-32 >"$ROOT/etc/vmfs-rescue/image-id"
