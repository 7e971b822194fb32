#!/usr/bin/env bash
# Makes sure a real Prometheus server binary is on this machine (the scrape test starts its own
# process of it, on a free loopback port with a temporary TSDB, to scrape tracebudget's /metrics)
# and prints its path: Debian's `prometheus`, installed without starting its service (see
# install-debian-binary.sh).
#
#   TRACEBUDGET_PROMETHEUS  a binary to use instead of looking for one
exec bash "$(dirname "$0")/install-debian-binary.sh" prometheus TRACEBUDGET_PROMETHEUS prometheus \
    prometheus /usr/bin/prometheus
