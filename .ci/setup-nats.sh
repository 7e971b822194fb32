#!/usr/bin/env bash
# Makes sure a real NATS server binary (with JetStream) is on this machine and prints its path on
# stdout — nothing else goes to stdout, so `NATS="$(bash .ci/setup-nats.sh)"` works. The JetStream
# tests start private servers of it (free loopback port, temporary store dir) that they kill and
# restart. Progress goes to stderr.
#
# Idempotent: when a binary is found it only prints its path. Otherwise it installs Debian's
# `nats-server` with apt-get (as root) without starting a Debian service. Concurrent runs
# serialise on a lock file.
#
#   TRACEBUDGET_NATS_SERVER  a binary to use instead of looking for one
set -euo pipefail

log() { echo "setup-nats: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The binary works when it answers --version.
works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_binary() {
    local c path
    for c in "${TRACEBUDGET_NATS_SERVER:-}" nats-server /usr/sbin/nats-server /usr/bin/nats-server; do
        [ -n "$c" ] || continue
        path="$(command -v "$c" 2>/dev/null)" || continue
        if works "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

if [ -n "${TRACEBUDGET_NATS_SERVER:-}" ] && ! works "$TRACEBUDGET_NATS_SERVER"; then
    die "TRACEBUDGET_NATS_SERVER=$TRACEBUDGET_NATS_SERVER does not run (--version failed)"
fi

# Fast path, without the lock.
if find_binary; then exit 0; fi

cache="$HOME/.cache/tracebudget"
mkdir -p "$cache"
exec 9>"$cache/nats-server.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "timed out waiting for the lock $cache/nats-server.lock"
fi
# Another run may have installed it while this one waited.
if find_binary; then exit 0; fi



# policy-rc.d answering 101 keeps maintainer scripts (invoke-rc.d, deb-systemd-invoke) from starting
# the service; put one in place only for this install, and only when the machine has none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tracebudget setup-nats.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

log "installing nats-server from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends nats-server >&2 ||
    die "apt-get install nats-server failed"

path="$(find_binary)" || die "nats-server is installed but no working binary was found"
log "ready: $path ($("$path" --version 2>&1 | head -n 1))"
echo "$path"
