#!/usr/bin/env bash
# Makes sure a real Prometheus server binary is on this machine (the scrape test starts its own
# process of it, on a free loopback port with a temporary TSDB, to scrape tracebudget's /metrics)
# and prints its path on stdout — nothing else goes to stdout, so
# `PROM="$(bash .ci/setup-prometheus.sh)"` works. Progress goes to stderr.
#
# Idempotent: when a binary is found it only prints its path. Otherwise it installs Debian's
# `prometheus` with apt-get (as root) without starting the Debian service: the test runs its own
# process, and a service on :9090 is neither needed nor wanted. Concurrent runs serialise on a
# lock file.
#
#   TRACEBUDGET_PROMETHEUS  a binary to use instead of looking for one
set -euo pipefail

log() { echo "setup-prometheus: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The binary works when it answers --version.
works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_binary() {
    local c path
    for c in "${TRACEBUDGET_PROMETHEUS:-}" prometheus /usr/bin/prometheus; do
        [ -n "$c" ] || continue
        path="$(command -v "$c" 2>/dev/null)" || continue
        if works "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

if [ -n "${TRACEBUDGET_PROMETHEUS:-}" ] && ! works "$TRACEBUDGET_PROMETHEUS"; then
    die "TRACEBUDGET_PROMETHEUS=$TRACEBUDGET_PROMETHEUS does not run (--version failed)"
fi

# Fast path, without the lock.
if find_binary; then exit 0; fi

cache="$HOME/.cache/tracebudget"
mkdir -p "$cache"
exec 9>"$cache/prometheus.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "timed out waiting for the lock $cache/prometheus.lock"
fi
# Another run may have installed it while this one waited.
if find_binary; then exit 0; fi



# policy-rc.d answering 101 keeps maintainer scripts (invoke-rc.d, deb-systemd-invoke) from starting
# the service; put one in place only for this install, and only when the machine has none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tracebudget setup-prometheus.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

log "installing prometheus from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends prometheus >&2 ||
    die "apt-get install prometheus failed"

path="$(find_binary)" || die "prometheus is installed but no working binary was found"
log "ready: $path ($("$path" --version 2>&1 | head -n 1))"
echo "$path"
