#!/usr/bin/env bash
# shellcheck disable=SC2054 # QEMU's -device/-drive values are comma lists by design
# Boot the rescue image in QEMU against forged datastores behind emulated storage controllers.
#
#   bash qemu-test/run.sh [--rebuild] [SCENARIO...]     (all scenarios by default)
#
# Scenarios:
#   headless-recover  forged datastore with a deleted VM behind megasas, ext4 target on USB:
#                     headless `recover`, then the host reads the results with debugfs (no
#                     mount) and checks them against the forge's ground truth
#   hba-matrix        one disk behind each of megasas, megasas-gen2, lsi53c895a, pvscsi,
#                     virtio-scsi, ahci, nvme, usb-storage, virtio-blk, plus an mptsas1068 HBA
#                     (QEMU 7.2 shows no disk behind it); every disk and controller must be seen
#                     with its driver; FAT target read back with mtools
#   boot-iso-bios     the ISO as a CD, SeaBIOS (isolinux): boots to the TUI start
#   boot-iso-uefi     the ISO as a CD, OVMF with Secure Boot on (shim, signed GRUB and kernel)
#   boot-usb-uefi     the USB image as a USB stick, OVMF (Secure Boot off)
#   usb-settings      the USB image as a USB stick, SeaBIOS (syslinux), with a vmfs-rescue.cfg on
#                     its FAT partition asking for a headless run and a keymap: the results land
#                     on the stick and are read back with mtools
#   tui-serial        the TUI driven by keys over the serial console: HBAs and disks listed, deep
#                     scan, the deleted VM marked and written to an NTFS disk it mounts (ntfs-3g
#                     on the image); checked with ntfscat/ntfsls on the host
#   network           vmfs.net=dhcp on a virtio-net NIC (QEMU user networking, host ports
#                     forwarded): a headless `serve http`, from which the host downloads a file
#                     (whole, by Range, resumed) and a snapshot chain as one raw disk with curl;
#                     then a headless `serve nbd` that `qemu-img convert` and `nbdinfo --map` read;
#                     contents checked against the forge's ground truth, wrong secrets refused
#
# Always TCG (-accel tcg -cpu max): /dev/kvm on the project machines is a nested software
# module a stock kernel does not boot under (../shared/research/appliance-feasibility.md).
# One line per scenario with its time and PASS/FAIL/SKIP; exit status 1 if any failed.
# Every source disk's SHA-256 is checked unchanged after every boot.
#
# Environment: VMFS_RESCUE_QEMU_TIMEOUT (seconds per boot, default 300), VMFS_RESCUE_QEMU_MEM
# (MiB, default 1024). Outputs (serial logs, disks) in qemu-test/out/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
IMG="$REPO/image/out"
OUT="$HERE/out"
TIMEOUT="${VMFS_RESCUE_QEMU_TIMEOUT:-300}"
MEM="${VMFS_RESCUE_QEMU_MEM:-1024}"
ALL=(headless-recover hba-matrix boot-iso-bios boot-iso-uefi boot-usb-uefi usb-settings tui-serial network)
export LC_ALL=C

rebuild=0
if [[ "${1:-}" == --rebuild ]]; then rebuild=1; shift; fi
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=("${ALL[@]}")
for s in "${SCENARIOS[@]}"; do
    [[ " ${ALL[*]} " == *" $s "* ]] || { echo "run.sh: unknown scenario '$s' (have: ${ALL[*]})" >&2; exit 2; }
done

# --- tools and image ----------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[[ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ]] || need+=(ovmf)
command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v ntfscat >/dev/null || need+=(ntfs-3g)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v nbdinfo >/dev/null || need+=(libnbd-bin)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $EUID -eq 0 ]] || { echo "run.sh: missing packages: ${need[*]} (apt-get install them)" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Rebuild when an input is newer than the ISO (or on --rebuild).
stale=$rebuild
for f in vmfs-rescue.iso vmfs-rescue-usb.img vmlinuz initrd.img; do [[ -f "$IMG/$f" ]] || stale=1; done
if [[ $stale -eq 0 ]] &&
    [[ -n "$(cd "$REPO" && find image/build*.sh image/stage-medium.sh image/modules.list image/overlay image/boot src Cargo.toml Cargo.lock -newer "$IMG/vmfs-rescue.iso" -print -quit)" ]]; then
    stale=1
fi
if [[ $stale -eq 1 ]]; then
    echo "run.sh: building the image (image/build.sh)"
    bash "$REPO/image/build.sh"
fi
# The guest's own binary also forges on the host (same code, same version).
VR="$IMG/work/rootfs/usr/bin/vmfs-rescue"

mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"

# --- helpers ------------------------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b - a}'; }
# Whether more than $TIMEOUT seconds have passed since $1 (a `now`).
timed_out() { awk -v a="$1" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN{exit !(b - a > t)}'; }

# Common QEMU line: q35, TCG, no network (unless NIC names one), serial to a file.
qemu_base() {
    QEMU=(qemu-system-x86_64 -machine "${MACHINE:-q35}" -accel tcg -cpu max -smp 2 -m "$MEM"
        -display none -monitor none -no-reboot -nic "${NIC:-none}" -serial "file:$1")
}
uefi_args() { # $1 = code, $2 = vars template
    cp "$2" "$WORK/vars.fd"
    QEMU+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$1" -drive "if=pflash,format=raw,unit=1,file=$WORK/vars.fd")
}
KAPPEND="console=ttyS0,115200 loglevel=4 panic=-1"

# Start QEMU and wait until the serial log matches $1 (an ERE) or QEMU exits or the timeout.
# Sets MARK_AT (seconds from start to the match, empty if none) and QEMU_RC. With $2 = kill,
# QEMU is stopped once the match is seen (interactive boots); else it must power off.
boot() {
    local want="$1" mode="$2" serial="$3"
    local t0 pid
    t0=$(now)
    MARK_AT=""
    "${QEMU[@]}" >"$serial.qemu" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -z "$MARK_AT" ]] && grep -Eq "$want" "$serial" 2>/dev/null; then
            MARK_AT=$(elapsed "$t0" "$(now)")
            [[ "$mode" == kill ]] && { kill "$pid"; break; }
        fi
        if timed_out "$t0"; then
            echo "  timeout after ${TIMEOUT}s" >>"$LOGF"
            kill "$pid"
            break
        fi
        sleep 0.2
    done
    QEMU_RC=0
    wait "$pid" || QEMU_RC=$?
    note "qemu exit status $QEMU_RC"
    if [[ -z "$MARK_AT" ]] && grep -Eq "$want" "$serial" 2>/dev/null; then MARK_AT=$(elapsed "$t0" "$(now)"); fi
    note "boot took $(elapsed "$t0" "$(now)")s, marker at ${MARK_AT:-never}s"
}

# Record a source disk's hash, and check it later. (Python's hashlib uses the CPU's SHA
# instructions: five times faster than sha256sum here.)
sha256() {
    python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 22), b""):
        h.update(b)
print(h.hexdigest())' "$1"
}
declare -A HASHES
hash_source() { HASHES["$1"]=$(sha256 "$1"); }
check_sources() {
    local f ok=0
    for f in "${!HASHES[@]}"; do
        if [[ "$(sha256 "$f")" != "${HASHES[$f]}" ]]; then
            fail "source changed: $f"
            ok=1
        fi
    done
    HASHES=()
    return $ok
}

FAILS=()
fail() { FAILS+=("$*"); echo "  FAIL: $*" >>"$LOGF"; }
note() { echo "  $*" >>"$LOGF"; }

# --- scenarios ----------------------------------------------------------------------------------
sc_headless_recover() {
    # 1400M: big enough for the scenario, small enough for the scan of every byte under TCG.
    "$VR" forge --scenario deleted --version 5 --size 1400M --small "$WORK/ds.img" >>"$LOGF" 2>&1 || { fail "forge failed"; return; }
    truncate -s 512M "$WORK/target.img"
    mkfs.ext4 -q -F -L RESCUEOUT "$WORK/target.img"
    hash_source "$WORK/ds.img"
    qemu_base "$WORK/serial.log"
    QEMU+=(-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img"
        -append "$KAPPEND vmfs.target=LABEL=RESCUEOUT vmfs.headless=\"recover @sources --state @out/state --to @out/recovered\""
        -drive "if=none,id=src,file=$WORK/ds.img,format=raw,cache=unsafe" -device megasas,id=hba0 -device scsi-hd,bus=hba0.0,drive=src
        -drive "if=none,id=tgt,file=$WORK/target.img,format=raw,cache=unsafe" -device qemu-xhci,id=usb -device usb-storage,bus=usb.0,drive=tgt)
    boot 'VMFS-RESCUE: headless done rc=' wait "$WORK/serial.log"
    check_sources || true
    # rc 1: some items of the deleted VM are not recoverable (by design, listed in the report).
    grep -Eq 'VMFS-RESCUE: headless done rc=[01]' "$WORK/serial.log" || { fail "no 'headless done rc=0|1' on the serial console"; return; }
    e2fsck -fn "$WORK/target.img" >>"$LOGF" 2>&1 || fail "e2fsck finds the target file system damaged"
    # The host reads the results without mounting: debugfs rdump of the run's folder.
    local run
    run=$(debugfs -R 'ls /vmfs-rescue' "$WORK/target.img" 2>/dev/null | tr -s ' ' '\n' | grep -E '^[0-9]{8}-' | head -n1)
    [[ -n "$run" ]] || { fail "no results folder on the target"; return; }
    mkdir -p "$WORK/got"
    debugfs -R "rdump /vmfs-rescue/$run $WORK/got" "$WORK/target.img" >>"$LOGF" 2>&1
    # The same recovery on the host, for comparison of what is found.
    "$VR" recover "$WORK/ds.img" --state "$WORK/host-state" --to "$WORK/host-out" >>"$LOGF" 2>&1 || true
    python3 "$HERE/check_recovery.py" "$WORK/ds.img.truth.json" "$WORK/got/$run/recovered" "$WORK/host-out" >>"$LOGF" 2>&1 ||
        fail "recovered files do not match the ground truth (see $LOGF)"
}

# Disk behind each controller: name, size in MiB (the key), expected driver in the disk's chain.
# The fourth column: the PCI controller's driver, as `vmfs-rescue devices --json` reports it.
HBA_MATRIX=(
    "megasas 101 megaraid_sas megaraid_sas"
    "megasas-gen2 102 megaraid_sas megaraid_sas"
    "lsi53c895a 103 sym53c8xx sym53c8xx"
    "pvscsi 104 vmw_pvscsi vmw_pvscsi"
    "virtio-scsi-pci 105 virtio_scsi virtio-pci"
    "ich9-ahci 106 ahci ahci"
    "nvme 107 nvme nvme"
    "usb-storage 108 usb-storage xhci_hcd"
    "virtio-blk-pci 109 virtio_blk virtio-pci"
)
sc_hba_matrix() {
    qemu_base "$WORK/serial.log"
    local i=0 hba size drv f
    for row in "${HBA_MATRIX[@]}"; do
        read -r hba size drv _ <<<"$row"
        f="$WORK/d$size.img"
        truncate -s "${size}M" "$f"
        hash_source "$f"
        QEMU+=(-drive "if=none,id=d$i,file=$f,format=raw,cache=unsafe")
        case "$hba" in
            ich9-ahci) QEMU+=(-device "ich9-ahci,id=h$i" -device "ide-hd,bus=h$i.0,drive=d$i") ;;
            nvme) QEMU+=(-device "nvme,drive=d$i,serial=VMFSNVME$i") ;;
            usb-storage) QEMU+=(-device "qemu-xhci,id=h$i" -device "usb-storage,bus=h$i.0,drive=d$i") ;;
            virtio-blk-pci) QEMU+=(-device "virtio-blk-pci,drive=d$i") ;;
            *) QEMU+=(-device "$hba,id=h$i" -device "scsi-hd,bus=h$i.0,drive=d$i") ;;
        esac
        i=$((i + 1))
    done
    # mptsas1068: the HBA only (QEMU 7.2 shows no disk behind it to Linux).
    truncate -s 110M "$WORK/d110.img"
    hash_source "$WORK/d110.img"
    QEMU+=(-drive "if=none,id=dm,file=$WORK/d110.img,format=raw,cache=unsafe" -device mptsas1068,id=hm -device scsi-hd,bus=hm.0,drive=dm)
    # The FAT results disk, on its own virtio-blk.
    mkfs.vfat -C -n RESCUEOUT "$WORK/fat.img" 65536 >/dev/null
    QEMU+=(-drive "if=none,id=tg,file=$WORK/fat.img,format=raw,cache=unsafe" -device virtio-blk-pci,drive=tg)
    local cmd="devices --json"
    note "headless command: $cmd"
    QEMU+=(-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$KAPPEND vmfs.target=LABEL=RESCUEOUT vmfs.headless=\"$cmd\"")
    boot 'VMFS-RESCUE: headless done rc=' wait "$WORK/serial.log"
    check_sources || true
    grep -Eq 'VMFS-RESCUE: headless done rc=[01]$' <(tr -d '\r' <"$WORK/serial.log") || { fail "headless run did not finish (rc 0 or 1)"; return; }
    mkdir -p "$WORK/got"
    mcopy -s -n -i "$WORK/fat.img" ::/vmfs-rescue "$WORK/got/" || { fail "no results folder on the FAT target"; return; }
    local run
    run=$(find "$WORK/got/vmfs-rescue" -mindepth 1 -maxdepth 1 -type d | head -n1)
    local inv="$run/disks.txt"
    [[ -f "$inv" ]] || { fail "no disks.txt in the results"; return; }
    for row in "${HBA_MATRIX[@]}"; do
        read -r hba size drv _ <<<"$row"
        local line
        line=$(grep -E "^disk [^ ]+ size=$((size * 1048576)) " "$inv" || true)
        if [[ -z "$line" ]]; then
            fail "$hba: no disk of $size MiB"
        elif [[ "$line" != *"ro=1"* ]]; then
            fail "$hba: disk not read-only: $line"
        elif ! grep -q "$drv" <<<"$line"; then
            fail "$hba: driver $drv not in: $line"
        else
            note "ok $hba: $line"
        fi
    done
    for drv in mptsas megaraid_sas sym53c8xx vmw_pvscsi ahci nvme xhci_hcd; do
        grep -q "^pci .* driver=$drv\$" "$inv" || fail "controller with driver $drv not listed"
    done
    # Each disk under a controller with the expected driver, read-only; the mptsas HBA listed.
    local msg
    if ! msg="$(printf '%s\n' "${HBA_MATRIX[@]}" | python3 "$HERE/check_devices.py" "$run/output.txt" 2>&1)"; then
        fail "devices --json: $msg"
    else
        note "devices --json: $msg"
    fi
}

# Interactive boots: up to the TUI on ttyS0.
TUI_MARK='VMFS-RESCUE: tui starting on ttyS0'
interactive_checks() { # $1 = expected boot medium disk (an ERE)
    [[ -n "$MARK_AT" ]] || { fail "no TUI marker on the serial console"; return; }
    grep -Eq "VMFS-RESCUE: boot medium $1" "$WORK/serial.log" || fail "boot medium $1 not recognised: $(grep -a 'boot medium' "$WORK/serial.log" | tr -d '\r')"
    grep -q 'VMFS-RESCUE: all disks read-only' "$WORK/serial.log" || fail "no read-only sweep"
    grep -q 'tui starting on ttyS0' "$WORK/serial.log" || fail "the TUI did not start"
    note "boot to TUI marker: ${MARK_AT}s"
    TUI_AT=$MARK_AT
}
one_source() { # a small forged datastore, attached read-only-by-appliance behind virtio-scsi
    "$VR" forge --scenario healthy --version 6 --size 2G --small "$WORK/src.img" >>"$LOGF" 2>&1 || fail "forge failed"
    hash_source "$WORK/src.img"
    QEMU+=(-drive "if=none,id=src,file=$WORK/src.img,format=raw,cache=unsafe" -device virtio-scsi-pci,id=vs -device scsi-hd,bus=vs.0,drive=src)
}

sc_boot_iso_bios() {
    qemu_base "$WORK/serial.log"
    one_source
    QEMU+=(-drive "file=$IMG/vmfs-rescue.iso,media=cdrom,readonly=on" -boot d)
    boot "$TUI_MARK" kill "$WORK/serial.log"
    check_sources || true
    interactive_checks 'sr0 \('
}
sc_boot_iso_uefi() {
    MACHINE=q35,smm=on qemu_base "$WORK/serial.log"
    QEMU+=(-global driver=cfi.pflash01,property=secure,value=on)
    uefi_args /usr/share/OVMF/OVMF_CODE_4M.secboot.fd /usr/share/OVMF/OVMF_VARS_4M.ms.fd
    one_source
    QEMU+=(-drive "file=$IMG/vmfs-rescue.iso,media=cdrom,readonly=on")
    boot "$TUI_MARK" kill "$WORK/serial.log"
    check_sources || true
    interactive_checks 'sr0 \('
    grep -q 'VMFS-RESCUE: firmware UEFI, secure boot on' "$WORK/serial.log" || fail "Secure Boot not reported on"
}
sc_boot_usb_uefi() {
    qemu_base "$WORK/serial.log"
    uefi_args /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd
    QEMU+=(-drive "if=none,id=stick,file=$IMG/vmfs-rescue-usb.img,format=raw,snapshot=on"
        -device qemu-xhci,id=usb -device usb-storage,bus=usb.0,drive=stick,bootindex=0)
    one_source
    boot "$TUI_MARK" kill "$WORK/serial.log"
    check_sources || true
    interactive_checks 'sd[a-z] \(sd[a-z]1, vfat\)'
}
sc_usb_settings() {
    cp --sparse=always "$IMG/vmfs-rescue-usb.img" "$WORK/stick.img"
    printf '%s\r\n' '# written by qemu-test' 'keymap=de' 'headless="volumes @sources"' >"$WORK/vmfs-rescue.cfg"
    mcopy -o -i "$WORK/stick.img@@1M" "$WORK/vmfs-rescue.cfg" ::/vmfs-rescue.cfg
    qemu_base "$WORK/serial.log"
    QEMU+=(-drive "if=none,id=stick,file=$WORK/stick.img,format=raw,cache=unsafe"
        -device qemu-xhci,id=usb -device usb-storage,bus=usb.0,drive=stick,bootindex=0)
    one_source
    boot 'VMFS-RESCUE: headless done rc=' wait "$WORK/serial.log"
    check_sources || true
    grep -q 'VMFS-RESCUE: headless done rc=0' "$WORK/serial.log" || { fail "no 'headless done rc=0'"; return; }
    mkdir -p "$WORK/got"
    mcopy -s -n -i "$WORK/stick.img@@1M" ::/vmfs-rescue "$WORK/got/" || { fail "no results on the stick"; return; }
    local run
    run=$(find "$WORK/got/vmfs-rescue" -mindepth 1 -maxdepth 1 -type d | head -n1)
    grep -q 'datastore6' "$run/output.txt" || fail "volumes output on the stick does not name datastore6"
    grep -q 'keymap de' "$run/boot.log" || fail "keymap de not loaded"
    grep -q '^vmfs-rescue volumes /dev/sd[a-z]$' "$run/command.txt" || fail "command.txt: $(cat "$run/command.txt")"
    local bootdev
    bootdev=$(sed -n 's/.*boot medium \([a-z0-9]*\) .*/\1/p' "$run/boot.log")
    [[ -n "$bootdev" && "$(cut -d' ' -f3 "$run/command.txt")" != "/dev/$bootdev" ]] ||
        fail "the boot stick ($bootdev) was given as a source, or not found"
}
sc_tui_serial() {
    # The TUI on the serial console, driven by keys as over serial-over-LAN: list the HBAs and
    # disks, deep-scan, mark the deleted VM, write it to the NTFS disk labelled RESCUEOUT (the
    # TUI mounts it with ntfs-3g: Debian's kernel has no ntfs3), then the host reads the files
    # back with ntfscat (no mount) and checks them.
    "$VR" forge --scenario demo --version 5 --size 2G --small "$WORK/ds.img" >>"$LOGF" 2>&1 || { fail "forge failed"; return; }
    hash_source "$WORK/ds.img"
    truncate -s 256M "$WORK/target.img"
    mkntfs -q -F -Q -L RESCUEOUT "$WORK/target.img" >>"$LOGF" 2>&1
    local venv="$OUT/venv"
    if ! "$venv/bin/python" -c 'import pyte' 2>/dev/null; then
        python3 -m venv "$venv" >>"$LOGF" 2>&1 && "$venv/bin/pip" install -q pyte >>"$LOGF" 2>&1 || { fail "cannot install pyte (a VT100 screen for the driver)"; return; }
    fi
    QEMU=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m "$MEM" -display none -monitor none -no-reboot -nic none
        -chardev "socket,id=ser0,path=$WORK/serial.sock,server=on,wait=off,logfile=$WORK/serial.log" -serial chardev:ser0
        -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$KAPPEND"
        -drive "if=none,id=src,file=$WORK/ds.img,format=raw,cache=unsafe" -device megasas,id=hba0 -device scsi-hd,bus=hba0.0,drive=src
        -drive "if=none,id=tgt,file=$WORK/target.img,format=raw,cache=unsafe" -device ich9-ahci,id=ahci -device ide-hd,bus=ahci.0,drive=tgt)
    local t0 pid
    t0=$(now)
    "${QEMU[@]}" >"$WORK/serial.log.qemu" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && ! grep -q 'VMFS-RESCUE: tui starting on ttyS0' "$WORK/serial.log" 2>/dev/null; do
        if timed_out "$t0"; then break; fi
        sleep 0.2
    done
    TUI_AT=$(elapsed "$t0" "$(now)")
    if ! grep -q 'VMFS-RESCUE: tui starting on ttyS0' "$WORK/serial.log" 2>/dev/null; then
        fail "the TUI did not start on ttyS0"
        kill "$pid" 2>/dev/null
        wait "$pid" || true
        return
    fi
    timeout 600 "$venv/bin/python" "$HERE/drive_tui.py" "$WORK/serial.sock" "$WORK/screens.txt" db01 >>"$LOGF" 2>&1 ||
        fail "driving the TUI failed (screens in $WORK/screens.txt, log $LOGF)"
    note "TUI session took $(elapsed "$t0" "$(now)")s"
    kill "$pid" 2>/dev/null
    wait "$pid" || true
    check_sources || true
    grep -q 'megaraid_sas' "$WORK/screens.txt" || fail "the Hardware screen did not list the megaraid_sas HBA"
    local want got
    want=$(python3 -c 'import json, sys; t = json.load(open(sys.argv[1])); print(next(f["sha256"] for f in t["files"] if f["path"] == "/db01/db01-flat.vmdk"))' "$WORK/ds.img.truth.json")
    got=$(ntfscat "$WORK/target.img" /vmfs-rescue/volumes/datastore5/db01/db01-flat.vmdk 2>>"$LOGF" | sha256sum | cut -d' ' -f1)
    [[ "$got" == "$want" ]] || fail "db01-flat.vmdk recovered through the TUI onto NTFS: sha256 $got, truth $want"
    ntfsls "$WORK/target.img" -p /vmfs-rescue 2>>"$LOGF" | grep -qx 'report.txt' || fail "no report.txt next to the recovered files"
}

# A free TCP port on the host's loopback (for QEMU's host forwarding).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Boot headless with one `vmfs-rescue serve ...` command and the guest port $3 forwarded to the
# host's 127.0.0.1:$2; returns once `ready` (a command) succeeds, with QEMU still running as
# $SERVE_PID. $1 = serial log, $4 = the command, $5... = the readiness check.
serve_boot() {
    local serial="$1" hport="$2" gport="$3" cmd="$4"
    shift 4
    NIC="user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$hport-:$gport" qemu_base "$serial"
    QEMU+=(-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$KAPPEND vmfs.net=dhcp vmfs.headless=\"$cmd\""
        -drive "if=none,id=src,file=$WORK/ds.img,format=raw,cache=unsafe" -device virtio-scsi-pci,id=vs -device scsi-hd,bus=vs.0,drive=src)
    local t0
    t0=$(now)
    "${QEMU[@]}" >"$serial.qemu" 2>&1 &
    SERVE_PID=$!
    while kill -0 "$SERVE_PID" 2>/dev/null; do
        if "$@" >/dev/null 2>&1; then
            note "$cmd: answering after $(elapsed "$t0" "$(now)")s"
            return 0
        fi
        if timed_out "$t0"; then break; fi
        sleep 1
    done
    fail "$cmd: no answer on port $hport (serial log $serial)"
    serve_end
    return 1
}
serve_end() {
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
}

sc_network() {
    "$VR" forge --scenario healthy --version 6 --size 2G --small "$WORK/ds.img" >>"$LOGF" 2>&1 || { fail "forge failed"; return; }
    hash_source "$WORK/ds.img"
    local secret="qemu-net-$RANDOM$RANDOM" hp np
    hp=$(free_port)
    np=$(free_port)
    # What to fetch: the biggest live file, and the first disk whose chain has two links.
    local label file fsha disk dsha
    read -r label file fsha disk dsha < <(python3 -c 'import json, sys
t = json.load(open(sys.argv[1]))
f = max((f for f in t["files"] if f["kind"] == "file" and f["state"] == "live" and f["sha256"]), key=lambda f: f["size"])
d = next(d for d in t["disks"] if len(d["chain"]) > 1)
print(t["label"], f["path"], f["sha256"], d["chain"][0], d["sha256"])' "$WORK/ds.img.truth.json")
    note "file $file ($fsha), disk $disk ($dsha) on $label"

    # HTTP: the secret as a bearer token or ?token=.
    local base="http://127.0.0.1:$hp" auth="Authorization: Bearer $secret"
    serve_boot "$WORK/serial-http.log" "$hp" 8080 "serve http @sources --listen 0.0.0.0:8080 --secret $secret" \
        curl -sf -m 5 -H "$auth" "$base/" || return
    local code
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$base/files/$label$file")
    [[ "$code" == 401 ]] || fail "HTTP without the secret: status $code, not 401"
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$base/files/$label$file?token=wrong-$secret")
    [[ "$code" == 401 ]] || fail "HTTP with a wrong secret: status $code, not 401"
    curl -sf -m 120 -H "$auth" -o "$WORK/whole.bin" "$base/files/$label$file" || fail "HTTP download of $file failed"
    [[ "$(sha256 "$WORK/whole.bin")" == "$fsha" ]] || fail "HTTP download of $file: content differs from the truth"
    # A download cut short and resumed (curl -C -): the first 1 MiB by Range, then the rest.
    curl -sf -m 60 -r 0-1048575 -o "$WORK/resumed.bin" "$base/files/$label$file?token=$secret" || fail "HTTP Range request failed"
    [[ "$(stat -c %s "$WORK/resumed.bin")" == 1048576 ]] || fail "HTTP Range request: not 1 MiB"
    curl -sf -m 120 -C - -o "$WORK/resumed.bin" "$base/files/$label$file?token=$secret" || fail "HTTP resumed download failed"
    [[ "$(sha256 "$WORK/resumed.bin")" == "$fsha" ]] || fail "HTTP resumed download: content differs from the truth"
    curl -sf -m 300 -H "$auth" -o "$WORK/disk.raw" "$base/disk/$label$disk" || fail "HTTP download of the disk $disk failed"
    [[ "$(sha256 "$WORK/disk.raw")" == "$dsha" ]] || fail "HTTP disk $disk: content differs from the truth"
    serve_end
    rm -f "$WORK/whole.bin" "$WORK/resumed.bin" "$WORK/disk.raw"

    # NBD: export names are SECRET/DISK.
    local uri="nbd://127.0.0.1:$np/$secret/${disk#/}"
    serve_boot "$WORK/serial-nbd.log" "$np" 10809 "serve nbd @sources --path $disk --listen 0.0.0.0:10809 --secret $secret" \
        nbdinfo --size "$uri" || { check_sources || true; return; }
    nbdinfo --size "nbd://127.0.0.1:$np/wrong-$secret/${disk#/}" >/dev/null 2>&1 && fail "NBD export opened with a wrong secret"
    qemu-img convert -f raw -O raw "$uri" "$WORK/nbd.raw" >>"$LOGF" 2>&1 || fail "qemu-img convert over NBD failed"
    [[ "$(sha256 "$WORK/nbd.raw")" == "$dsha" ]] || fail "qemu-img convert over NBD: content differs from the truth"
    local map
    map=$(nbdinfo --map "$uri" 2>>"$LOGF") || fail "nbdinfo --map failed"
    note "nbdinfo --map: $(wc -l <<<"$map") extents"
    grep -q 'hole' <<<"$map" || fail "nbdinfo --map shows no hole (base:allocation): $map"
    serve_end
    rm -f "$WORK/nbd.raw"
    check_sources || true
}

# --- run ----------------------------------------------------------------------------------------
failed=0 passed=0 skipped=0
T0=$SECONDS
for s in "${SCENARIOS[@]}"; do
    WORK="$OUT/$s"
    rm -rf "$WORK"
    mkdir -p "$WORK"
    LOGF="$WORK/test.log"
    : >"$LOGF"
    FAILS=() TUI_AT="" SKIP_REASON="" MACHINE=""
    start=$(now)
    # A command failing inside a scenario (non-zero status) makes it fail, not the whole run.
    "sc_${s//-/_}" || fail "scenario aborted"
    secs=$(elapsed "$start" "$(now)")
    extra=""
    [[ -n "$TUI_AT" ]] && extra=" (boot to TUI ${TUI_AT}s)"
    if [[ -n "$SKIP_REASON" ]]; then
        printf '%-18s SKIP %6ss  %s\n' "$s" "$secs" "$SKIP_REASON"
        skipped=$((skipped + 1))
    elif [[ ${#FAILS[@]} -eq 0 ]]; then
        printf '%-18s PASS %6ss%s\n' "$s" "$secs" "$extra"
        passed=$((passed + 1))
    else
        printf '%-18s FAIL %6ss%s: %s (log %s)\n' "$s" "$secs" "$extra" "${FAILS[0]}" "${LOGF#"$REPO"/}"
        failed=$((failed + 1))
    fi
    echo "$s ${SKIP_REASON:+skip}$([[ -z "$SKIP_REASON" ]] && { [[ ${#FAILS[@]} -eq 0 ]] && echo pass || echo fail; }) $secs ${TUI_AT:--}" >>"$RESULTS"
    # Large scratch disks go; serial logs and results stay (recovered copies only on failure).
    find "$WORK" -maxdepth 1 -name '*.img' -size +1M -delete
    [[ ${#FAILS[@]} -eq 0 ]] && rm -rf "$WORK/got" "$WORK/host-out" "$WORK/host-state"
done
echo "qemu-test: $passed passed, $failed failed, $skipped skipped in $((SECONDS - T0))s"
[[ $failed -eq 0 ]]
