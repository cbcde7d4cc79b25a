################################################################################
#
# vmfs-rescue: built from the repository this BR2_EXTERNAL tree lives in
#
################################################################################

VMFS_RESCUE_VERSION = 0.1.0
VMFS_RESCUE_SITE = $(BR2_EXTERNAL_VMFS_RESCUE_PATH)/..
VMFS_RESCUE_SITE_METHOD = local
VMFS_RESCUE_LICENSE = GPL-3.0+
# Build outputs of the host builds are not sources: keep them out of the copy.
VMFS_RESCUE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude image/out --exclude qemu-test/out --exclude .git
VMFS_RESCUE_CARGO_BUILD_OPTS = --bin vmfs-rescue

# cargo-package vendors crates only for downloaded tarballs and then builds with
# --offline --locked. A local source has to be vendored here (online, with Buildroot's
# host cargo) before the build.
define VMFS_RESCUE_VENDOR_CRATES
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		cargo vendor --locked --versioned-dirs VENDOR > $(@D)/.vendor-config.toml
	mkdir -p $(@D)/.cargo
	mv $(@D)/.vendor-config.toml $(@D)/.cargo/config.toml
endef
VMFS_RESCUE_PRE_CONFIGURE_HOOKS += VMFS_RESCUE_VENDOR_CRATES

$(eval $(cargo-package))
