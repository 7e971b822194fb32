#!/usr/bin/env bash
# Makes sure Debian's headless-capable Chromium and its WebDriver (chromedriver) are on this
# machine — the dashboard tests (tests/tests/dashboards.rs) start their own chromedriver on a
# free loopback port — and prints the chromedriver path on stdout; nothing else goes to stdout,
# so `DRIVER="$(bash .ci/setup-chromium.sh)"` works. Progress goes to stderr.
#
# Idempotent: when both binaries answer --version it only prints the path. Otherwise it installs
# Debian's `chromium` and `chromium-driver` with apt-get (as root, `apt-get update` first).
# Concurrent runs serialise on a lock file.
#
#   TRACEBUDGET_CHROMEDRIVER  a chromedriver to use instead of looking for one
#   TRACEBUDGET_CHROMIUM      a chromium binary to check instead of looking for one
set -euo pipefail

log() { echo "setup-chromium: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

first_working() {
    local c path
    for c in "$@"; do
        [ -n "$c" ] || continue
        path="$(command -v "$c" 2>/dev/null)" || continue
        if works "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

find_driver() { first_working "${TRACEBUDGET_CHROMEDRIVER:-}" chromedriver /usr/bin/chromedriver; }
find_browser() { first_working "${TRACEBUDGET_CHROMIUM:-}" chromium /usr/bin/chromium; }

# Both present: print the driver.
found() {
    local d
    d="$(find_driver)" && find_browser >/dev/null && echo "$d"
}

if [ -n "${TRACEBUDGET_CHROMEDRIVER:-}" ] && ! works "$TRACEBUDGET_CHROMEDRIVER"; then
    die "TRACEBUDGET_CHROMEDRIVER=$TRACEBUDGET_CHROMEDRIVER does not run (--version failed)"
fi

# Fast path, without the lock.
if found; then exit 0; fi

cache="$HOME/.cache/tracebudget"
mkdir -p "$cache"
exec 9>"$cache/chromium.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 1200 9 || die "timed out waiting for the lock $cache/chromium.lock"
fi
# Another run may have installed it while this one waited.
if found; then exit 0; fi

[ "$(id -u)" = 0 ] || die "no chromium/chromedriver found and this is not root: install Debian's chromium and chromium-driver, or set TRACEBUDGET_CHROMEDRIVER"
command -v apt-get >/dev/null 2>&1 || die "no chromium/chromedriver found and no apt-get: set TRACEBUDGET_CHROMEDRIVER to a chromedriver"

log "installing chromium and chromium-driver from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
# fonts-dejavu-core: readable text in the screenshots (the dashboards use the system sans-serif).
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2 ||
    die "apt-get install chromium chromium-driver failed"

path="$(found)" || die "chromium and chromium-driver are installed but a binary does not run"
log "ready: $path ($("$path" --version 2>&1 | head -n 1); $("$(find_browser)" --version 2>/dev/null | head -n 1))"
echo "$path"
