#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016 # ok/bad always succeed; $(...) below is Buildroot text, not shell
# Offline checks of the BR2_EXTERNAL tree (Buildroot itself cannot be built here: it downloads
# its toolchain, kernel and Rust).
#
#   bash buildroot/check.sh
#
#  1. Config.in files parse with Kconfig (python3-kconfiglib, Debian's Kconfig implementation),
#     with Buildroot's Rust symbols stubbed, and define BR2_PACKAGE_VMFS_RESCUE.
#  2. external.mk and the package .mk parse with GNU make, with Buildroot's cargo-package stubbed,
#     and name this repository as the package's local site.
#  3. Every option of the defconfig is defined by this tree or listed in known-options.txt
#     (names checked against the Buildroot source); kernel and busybox fragments are well formed.
#  4. The overlay is image/'s overlay (same directory, with its /init), and every path the
#     defconfig names exists.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export BR2_EXTERNAL_VMFS_RESCUE_PATH="$HERE"
export LC_ALL=C
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

if ! /usr/bin/python3 -c 'import kconfiglib' 2>/dev/null; then
    if [[ $EUID -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-kconfiglib >/dev/null
    else
        echo "check.sh: needs python3-kconfiglib (apt-get install python3-kconfiglib)" >&2
        exit 1
    fi
fi

# 1. Kconfig
grep -qx 'name: VMFS_RESCUE' "$HERE/external.desc" && ok "external.desc names VMFS_RESCUE" || bad "external.desc: name is not VMFS_RESCUE"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cat >"$TMP/Kconfig" <<'EOF'
mainmenu "stub of Buildroot's top level"
config BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS
	def_bool y
config BR2_PACKAGE_HOST_RUSTC
	bool "host rustc"
source "$BR2_EXTERNAL_VMFS_RESCUE_PATH/Config.in"
EOF
if out="$(/usr/bin/python3 - "$TMP/Kconfig" <<'EOF' 2>&1
import sys, kconfiglib
k = kconfiglib.Kconfig(sys.argv[1], warn_to_stderr=False)
for w in k.warnings:
    print("warning:", w)
sym = k.syms.get("BR2_PACKAGE_VMFS_RESCUE")
assert sym is not None and sym.type == kconfiglib.BOOL, "BR2_PACKAGE_VMFS_RESCUE missing or not bool"
sym.set_value(2)
assert k.syms["BR2_PACKAGE_HOST_RUSTC"].tri_value == 2, "selecting vmfs-rescue does not select host rustc"
print("\n".join(sorted(s.name for s in k.unique_defined_syms)))
sys.exit(1 if k.warnings else 0)
EOF
)"; then
    ok "Config.in parses (kconfiglib), BR2_PACKAGE_VMFS_RESCUE selects BR2_PACKAGE_HOST_RUSTC"
    OWN="$out"
else
    bad "Config.in: $out"
    OWN=""
fi

# 2. make: the .mk files with Buildroot's package machinery stubbed.
cat >"$TMP/Makefile" <<'EOF'
# Stubs of what Buildroot provides to a package .mk.
pkgname = vmfs-rescue
cargo-package = CARGO_PACKAGE_CALLED = yes
include $(BR2_EXTERNAL_VMFS_RESCUE_PATH)/external.mk
show:
	@echo "site=$(VMFS_RESCUE_SITE)"
	@echo "method=$(VMFS_RESCUE_SITE_METHOD)"
	@echo "cargo=$(CARGO_PACKAGE_CALLED)"
	@echo "hooks=$(VMFS_RESCUE_PRE_CONFIGURE_HOOKS)"
	@echo "license=$(VMFS_RESCUE_LICENSE)"
EOF
if mk="$(make -s --warn-undefined-variables -f "$TMP/Makefile" show 2>&1)"; then
    site="$(sed -n 's/^site=//p' <<<"$mk")"
    if [[ "$(cd "$site" 2>/dev/null && pwd -P)" == "$(cd "$REPO" && pwd -P)" && -f "$site/Cargo.toml" ]]; then
        ok "vmfs-rescue.mk: local site is this repository ($site)"
    else
        bad "vmfs-rescue.mk: site $site is not the repository"
    fi
    grep -qx 'method=local' <<<"$mk" && ok "vmfs-rescue.mk: SITE_METHOD local" || bad "vmfs-rescue.mk: SITE_METHOD is not local"
    grep -qx 'cargo=yes' <<<"$mk" && ok "vmfs-rescue.mk: uses cargo-package" || bad "vmfs-rescue.mk: cargo-package not called"
    grep -q 'VMFS_RESCUE_VENDOR_CRATES' <<<"$mk" && ok "vmfs-rescue.mk: vendoring hook registered" || bad "vmfs-rescue.mk: no vendoring hook"
    bad_vars="$(grep -i 'warning' <<<"$mk" | grep -v 'PKG_COMMON_CARGO_ENV\|TARGET_MAKE_ENV\|@D' || true)"
    [[ -z "$bad_vars" ]] || bad "make warnings: $bad_vars"
else
    bad "make cannot parse the .mk files: $mk"
fi

# 3. defconfig options
DEFCONFIG="$HERE/configs/vmfs_rescue_defconfig"
KNOWN="$(sed 's/#.*//' "$HERE/known-options.txt" | awk 'NF{print $1}')"
while read -r opt; do
    if grep -qx "$opt" <<<"$KNOWN"; then
        :
    elif [[ -n "$OWN" ]] && grep -qx "$opt" <<<"$OWN"; then
        :
    else
        bad "defconfig: $opt is neither defined here nor in known-options.txt"
        continue
    fi
done < <(sed -n 's/^\(BR2_[A-Za-z0-9_]*\)=.*/\1/p' "$DEFCONFIG")
n="$(grep -c '^BR2_' "$DEFCONFIG")"
ok "defconfig: $n options checked against this tree and known-options.txt"
grep -v '^#' "$DEFCONFIG" | grep -v '^$' | grep -vq '^BR2_[A-Za-z0-9_]*=' && bad "defconfig: a line is not BR2_NAME=VALUE"
for frag in board/vmfs-rescue/linux.fragment board/vmfs-rescue/busybox.fragment; do
    if grep -v '^#' "$HERE/$frag" | grep -v '^$' | grep -vqE '^CONFIG_[A-Z0-9_]+=(y|m|n|"[^"]*"|[0-9]+)$'; then
        bad "$frag: a line is not CONFIG_NAME=VALUE"
    else
        ok "$frag well formed"
    fi
done

# 4. paths: the overlay is image/'s, every referenced file exists.
while read -r val; do
    path="${val//\$(BR2_EXTERNAL_VMFS_RESCUE_PATH)/$HERE}"
    [[ -e "$path" ]] && ok "defconfig path exists: ${val}" || bad "defconfig path missing: $val"
done < <(grep -o '"\$(BR2_EXTERNAL_VMFS_RESCUE_PATH)[^"]*"' "$DEFCONFIG" | tr -d '"')
overlay="$(sed -n 's/^BR2_ROOTFS_OVERLAY="\(.*\)"/\1/p' "$DEFCONFIG")"
overlay="${overlay//\$(BR2_EXTERNAL_VMFS_RESCUE_PATH)/$HERE}"
if [[ "$(cd "$overlay" && pwd -P)" == "$(cd "$REPO/image/overlay" && pwd -P)" && -x "$overlay/init" ]]; then
    ok "overlay is image/overlay (the same /init as image/build.sh)"
else
    bad "overlay $overlay is not image/overlay"
fi
for s in board/vmfs-rescue/post-build.sh board/vmfs-rescue/post-image.sh; do
    bash -n "$HERE/$s" && ok "$s: bash syntax" || bad "$s: bash syntax"
done
grep -q 'image/build-iso.sh' "$HERE/board/vmfs-rescue/post-image.sh" &&
    grep -q 'image/build-usb.sh' "$HERE/board/vmfs-rescue/post-image.sh" &&
    ok "post-image.sh makes the images with image/'s scripts" || bad "post-image.sh does not use image/build-iso.sh and build-usb.sh"

if [[ $fails -gt 0 ]]; then
    echo "buildroot/check.sh: $fails failed"
    exit 1
fi
echo "buildroot/check.sh: all passed"
