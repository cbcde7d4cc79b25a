#!/usr/bin/env bash
# An `ssh://` source against OpenSSH's own `ssh HOST cat` of the same image, in one run.
#
#   scripts/bench-ssh.sh [SIZE_MIB]      (default 1024)
#
# Starts an sshd on a free loopback port (keys made here by ssh-keygen, nothing in ~/.ssh or
# /etc/ssh is used or changed), makes an image of SIZE_MIB random MiB, and times, warm cache
# (the server reads from the page cache, so the figures are about the SSH path, not the disk),
# median of ROUNDS:
#   (a) ssh -p PORT USER@127.0.0.1 cat IMAGE > /dev/null     (OpenSSH on both ends)
#   (b) vmfs-rescue scan ssh://USER@127.0.0.1:PORT/IMAGE --state DIR   (a fresh state each time)
#   (c) vmfs-rescue scan IMAGE --state DIR                   (local, for the record)
# and prints MB/s (10^6 bytes/s) and the ratio b/a. Both (a) and (b) include connecting and
# logging in. Nothing asserts a time.
#
# Environment: CARGO_TARGET_DIR, VMFS_RESCUE_BENCH_DIR (default <target>/bench-ssh),
# VMFS_RESCUE_BENCH_ROUNDS (default 3), VMFS_RESCUE_BENCH_BIN (a binary to time instead of
# building one).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${VMFS_RESCUE_BENCH_BIN:-$TARGET/release/vmfs-rescue}"
WORK="${VMFS_RESCUE_BENCH_DIR:-$TARGET/bench-ssh}"
MIB="${1:-1024}"
ROUNDS="${VMFS_RESCUE_BENCH_ROUNDS:-3}"
SIZE=$((MIB * 1024 * 1024))

log() { echo "bench-ssh: $*" >&2; }
SSHD="$(command -v sshd || echo /usr/sbin/sshd)"
[[ -x "$SSHD" ]] || { log "sshd missing: bash scripts/setup-tools.sh"; exit 1; }

if [[ -z "${VMFS_RESCUE_BENCH_BIN:-}" ]]; then
    log "cargo build --release"
    cargo build --release --quiet
fi
mkdir -p "$WORK"
IMAGE="$WORK/image.bin"
if [[ "$(stat -c %s "$IMAGE" 2>/dev/null)" != "$SIZE" ]]; then
    log "making $IMAGE ($MIB MiB)"
    head -c "$SIZE" /dev/urandom >"$IMAGE"
fi

KEYS="$(mktemp -d)"
cleanup() {
    [[ -n "${SSHD_PID:-}" ]] && kill "$SSHD_PID" 2>/dev/null
    rm -rf "$KEYS" "$WORK/state"
}
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N "" -f "$KEYS/host"
ssh-keygen -q -t ed25519 -N "" -f "$KEYS/user"
cp "$KEYS/user.pub" "$KEYS/authorized_keys"
mkdir -p /run/sshd
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$KEYS/sshd_config" <<EOF
ListenAddress 127.0.0.1:$PORT
HostKey $KEYS/host
AuthorizedKeysFile $KEYS/authorized_keys
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
LogLevel ERROR
EOF
"$SSHD" -D -e -f "$KEYS/sshd_config" 2>"$KEYS/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
done
USER_NAME="$(id -un)"
FP="$(ssh-keygen -lf "$KEYS/host.pub" | awk '{print $2}')"
URL="ssh://$USER_NAME@127.0.0.1:$PORT$IMAGE"

elapsed() {
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$WORK/last.err" || { echo fail; return; }
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
median() { printf '%s\n' "$@" | grep -v fail | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "fail"; else print a[int((NR + 1) / 2)] }'; }
mbps() { [[ "$1" =~ ^[0-9.]+$ ]] && awk -v n="$SIZE" -v s="$1" 'BEGIN { printf "%.1f", n / 1e6 / s }' || echo "$1"; }

run_ssh() {
    ssh -q -p "$PORT" -i "$KEYS/user" -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no \
        -o BatchMode=yes "$USER_NAME@127.0.0.1" cat "$IMAGE"
}
run_remote() { rm -rf "$WORK/state"; "$BIN" --host-key "$FP" -i "$KEYS/user" scan "$URL" --state "$WORK/state"; }
run_local() { rm -rf "$WORK/state"; "$BIN" scan "$IMAGE" --state "$WORK/state"; }

cat "$IMAGE" >/dev/null
declare -A RUNS
for ((r = 1; r <= ROUNDS; r++)); do
    for m in ssh remote local; do
        RUNS[$m]+=" $(elapsed "run_$m")"
    done
done
for m in ssh remote local; do
    # shellcheck disable=SC2086
    [[ "$(median ${RUNS[$m]})" != fail ]] || { log "$m failed: $(cat "$WORK/last.err")"; exit 1; }
done

echo "image: $IMAGE ($SIZE bytes, warm cache); rounds $ROUNDS, medians"
printf '%-52s %9s %10s\n' "" "s" "MB/s"
declare -A T
for m in ssh remote local; do
    # shellcheck disable=SC2086
    T[$m]="$(median ${RUNS[$m]})"
    case $m in
        ssh) label="(a) ssh cat (OpenSSH)" ;;
        remote) label="(b) vmfs-rescue scan ssh://" ;;
        local) label="(c) vmfs-rescue scan of the local file" ;;
    esac
    printf '%-52s %9s %10s\n' "$label" "${T[$m]}" "$(mbps "${T[$m]}")"
done
echo "THROUGHPUT RATIO scan over ssh vs ssh cat (b/a): $(awk -v a="${T[ssh]}" -v b="${T[remote]}" 'BEGIN { printf "%.2f", a / b }')"
