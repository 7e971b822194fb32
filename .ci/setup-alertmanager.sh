#!/usr/bin/env bash
# Makes sure a real Alertmanager binary is on this machine (the alerting tests start their own
# process of it, on free loopback ports, to check what the `alertmanager` receiver pushes) and
# prints its path: Debian's `prometheus-alertmanager`, installed without starting its service
# (see install-debian-binary.sh). Debian names the binary prometheus-alertmanager, upstream's
# tarball alertmanager.
#
#   TRACEBUDGET_ALERTMANAGER  a binary to use instead of looking for one
exec bash "$(dirname "$0")/install-debian-binary.sh" alertmanager TRACEBUDGET_ALERTMANAGER prometheus-alertmanager \
    prometheus-alertmanager alertmanager /usr/bin/prometheus-alertmanager
