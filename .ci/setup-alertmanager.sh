#!/usr/bin/env bash
# Makes sure a real Alertmanager binary is on this machine (the alerting tests start their own
# process of it, on free loopback ports, to check what the `alertmanager` receiver pushes) and
# prints its path on stdout — nothing else goes to stdout, so `AM="$(bash .ci/setup-alertmanager.sh)"`
# works. Progress goes to stderr.
#
# Idempotent: when a binary is found it only prints its path. Otherwise it installs Debian's
# `prometheus-alertmanager` with apt-get (as root) without starting the Debian service: the tests
# run their own process, and a service on :9093 is neither needed nor wanted. Concurrent runs
# (parallel test processes) serialise on a lock file.
#
#   TRACEBUDGET_ALERTMANAGER  a binary to use instead of looking for one
set -euo pipefail

log() { echo "setup-alertmanager: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The binary works when it answers --version (Debian names it prometheus-alertmanager, upstream's
# tarball alertmanager).
works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_binary() {
    local c path
    for c in "${TRACEBUDGET_ALERTMANAGER:-}" prometheus-alertmanager alertmanager /usr/bin/prometheus-alertmanager; do
        [ -n "$c" ] || continue
        path="$(command -v "$c" 2>/dev/null)" || continue
        if works "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

if [ -n "${TRACEBUDGET_ALERTMANAGER:-}" ] && ! works "$TRACEBUDGET_ALERTMANAGER"; then
    die "TRACEBUDGET_ALERTMANAGER=$TRACEBUDGET_ALERTMANAGER does not run (--version failed)"
fi

# Fast path, without the lock.
if find_binary; then exit 0; fi

cache="$HOME/.cache/tracebudget"
mkdir -p "$cache"
exec 9>"$cache/alertmanager.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "timed out waiting for the lock $cache/alertmanager.lock"
fi
# Another run may have installed it while this one waited.
if find_binary; then exit 0; fi

[ "$(id -u)" = 0 ] || die "no alertmanager binary found and this is not root: install Debian's prometheus-alertmanager, or set TRACEBUDGET_ALERTMANAGER to a binary"
command -v apt-get >/dev/null 2>&1 || die "no alertmanager binary found and no apt-get: set TRACEBUDGET_ALERTMANAGER to a binary"

# policy-rc.d answering 101 keeps maintainer scripts (invoke-rc.d, deb-systemd-invoke) from starting
# the service; put one in place only for this install, and only when the machine has none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tracebudget setup-alertmanager.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

log "installing prometheus-alertmanager from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends prometheus-alertmanager >&2 ||
    die "apt-get install prometheus-alertmanager failed"

path="$(find_binary)" || die "prometheus-alertmanager is installed but no working binary was found"
log "ready: $path ($("$path" --version 2>&1 | head -n 1))"
echo "$path"
