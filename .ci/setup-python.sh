#!/usr/bin/env bash
# Creates (once) the Python virtualenv holding the real tracing clients that the ingestion
# end-to-end tests drive and the SMTP server the email tests send to (tests/clients/requirements.txt), and prints the venv's python path on
# stdout — nothing else goes to stdout, so `PY="$(bash .ci/setup-python.sh)"` works.
#
# Idempotent and cheap when nothing changed: a stamp in the venv records the requirements' hash
# and the base interpreter; a second run only checks it. Concurrent runs (parallel test processes)
# serialise on a lock file.
#
#   TRACEBUDGET_VENV         where the venv lives   (default ~/.cache/tracebudget/venv)
#   TRACEBUDGET_BASE_PYTHON  the interpreter to build it from (default: python3, then /usr/bin/python3)
#
# On a fresh Debian machine without a usable python3/venv it installs python3 and python3-venv
# with apt-get when running as root. Only PyPI and Debian's archive are needed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/tests/clients/requirements.txt"
venv="${TRACEBUDGET_VENV:-$HOME/.cache/tracebudget/venv}"
py="$venv/bin/python"

log() { echo "setup-python: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[ -f "$req" ] || die "$req is missing"
mkdir -p "$(dirname "$venv")"

# One run at a time per venv (cargo test and nextest start several test processes at once).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "timed out waiting for the lock $venv.lock"
fi

req_hash() { sha256sum "$req" | cut -d' ' -f1; }

# Fast path: the venv exists, was built from these exact requirements and still imports them.
if [ -x "$py" ] && [ -f "$venv/.tracebudget-stamp" ] &&
    [ "$(cat "$venv/.tracebudget-stamp")" = "$(req_hash)" ] &&
    "$py" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.shim.opentracing_shim, opentracing, py_zipkin, aiosmtpd' 2>/dev/null; then
    echo "$py"
    exit 0
fi

# A base interpreter of at least 3.10 (the OpenTelemetry SDK's floor) that can make a venv with pip.
usable() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null
}

make_venv() {
    local base="$1"
    log "creating $venv with $base ($("$base" --version 2>&1))"
    rm -rf "$venv"
    "$base" -m venv "$venv" >&2 2>&1 && [ -x "$py" ] && "$py" -m pip --version >/dev/null 2>&1
}

candidates=()
[ -n "${TRACEBUDGET_BASE_PYTHON:-}" ] && candidates+=("$TRACEBUDGET_BASE_PYTHON")
candidates+=(python3 /usr/bin/python3)

made=""
for base in "${candidates[@]}"; do
    if usable "$base" && make_venv "$base"; then
        made="$base"
        break
    fi
done

if [ -z "$made" ]; then
    # Debian splits venv/ensurepip into python3-venv; install it (and python3 itself) if we can.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "no usable python3 with venv: installing python3 python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2 || die "apt-get update failed"
        apt-get install -y --no-install-recommends python3 python3-venv >&2 ||
            die "apt-get install python3 python3-venv failed"
        for base in /usr/bin/python3 python3; do
            if usable "$base" && make_venv "$base"; then
                made="$base"
                break
            fi
        done
    fi
fi
[ -n "$made" ] || die "could not create a Python >= 3.10 virtualenv at $venv (tried: ${candidates[*]}); install python3 and python3-venv"

log "installing $req"
"$py" -m pip install --disable-pip-version-check --no-input --quiet -r "$req" >&2 ||
    die "pip install -r $req failed"
"$py" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.shim.opentracing_shim, opentracing, py_zipkin, aiosmtpd' ||
    die "the installed clients do not import"
req_hash >"$venv/.tracebudget-stamp"
log "ready: $py"
echo "$py"
