#!/usr/bin/env bash
# The Debian tools the forge and the tests call: mkfs.ext4/debugfs (e2fsprogs), mkfs.vfat
# (dosfstools), mcopy (mtools), mkntfs/ntfscp (ntfs-3g), mkfs.exfat (exfatprogs) with
# mount.exfat-fuse (exfat-fuse) for the exFAT guest test, pvcreate and friends (lvm2) for the
# Linux LVM2 guest test, qemu-img (qemu-utils), and the network
# export's clients: nbdinfo (libnbd-bin), curl; for the SSH source and the SFTP push, the OpenSSH server
# the tests start on loopback and its ssh-keygen (openssh-server, openssh-client). Installs only what is missing; needs root or sudo
# for that.
#
#   bash scripts/setup-tools.sh
set -euo pipefail

declare -A pkg_of=(
    [mkfs.ext4]=e2fsprogs [debugfs]=e2fsprogs [mkfs.vfat]=dosfstools [mcopy]=mtools
    [mkntfs]=ntfs-3g [ntfscp]=ntfs-3g [qemu-img]=qemu-utils
    [mkfs.exfat]=exfatprogs [mount.exfat-fuse]=exfat-fuse [pvcreate]=lvm2 [losetup]=mount
    [nbdinfo]=libnbd-bin [curl]=curl [sshd]=openssh-server [ssh-keygen]=openssh-client
)
missing=()
for tool in "${!pkg_of[@]}"; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool && ! -x /sbin/$tool ]]; then
        missing+=("${pkg_of[$tool]}")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "setup-tools: installing ${pkgs[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
    run=()
elif command -v sudo >/dev/null; then
    run=(sudo)
else
    echo "setup-tools: not root and no sudo: install ${pkgs[*]} by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${run[@]}" apt-get install -y -qq "${pkgs[@]}" >&2; then
    "${run[@]}" apt-get update -qq >&2
    "${run[@]}" apt-get install -y -qq "${pkgs[@]}" >&2
fi
