#!/usr/bin/env bash
# Shared by the setup scripts: makes sure a real binary of a Debian package is on this machine and
# prints its path on stdout — nothing else goes to stdout, so `BIN="$(bash .ci/setup-x.sh)"`
# works. Progress goes to stderr.
#
#   install-debian-binary.sh NAME ENV_VAR PACKAGE CANDIDATE...
#
# A binary works when it answers --version. ENV_VAR, when set, names the binary to use (and must
# work); otherwise the CANDIDATEs are tried in order. When none works it installs PACKAGE with
# apt-get (as root) without starting its Debian service — the tests run their own processes on
# free loopback ports. Idempotent; concurrent runs serialise on a lock file.
set -euo pipefail

name="$1" env_var="$2" package="$3"
shift 3
candidates=("$@")
override="${!env_var:-}"

log() { echo "setup-$name: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_binary() {
    local c path
    for c in "$override" "${candidates[@]}"; do
        [ -n "$c" ] || continue
        path="$(command -v "$c" 2>/dev/null)" || continue
        if works "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

if [ -n "$override" ] && ! works "$override"; then
    die "$env_var=$override does not run (--version failed)"
fi

# Fast path, without the lock.
if find_binary; then exit 0; fi

cache="$HOME/.cache/tracebudget"
mkdir -p "$cache"
exec 9>"$cache/$name.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "timed out waiting for the lock $cache/$name.lock"
fi
# Another run may have installed it while this one waited.
if find_binary; then exit 0; fi

[ "$(id -u)" = 0 ] || die "no $name binary found and this is not root: install Debian's $package, or set $env_var to a binary"
command -v apt-get >/dev/null 2>&1 || die "no $name binary found and no apt-get: set $env_var to a binary"

# policy-rc.d answering 101 keeps maintainer scripts (invoke-rc.d, deb-systemd-invoke) from starting
# the service; put one in place only for this install, and only when the machine has none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tracebudget setup-%s: no service starts during this install\nexit 101\n' "$name" >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

log "installing $package from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends "$package" >&2 || die "apt-get install $package failed"

path="$(find_binary)" || die "$package is installed but no working binary was found"
log "ready: $path ($("$path" --version 2>&1 | head -n 1))"
echo "$path"
