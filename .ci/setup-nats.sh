#!/usr/bin/env bash
# Makes sure a real NATS server binary (with JetStream) is on this machine and prints its path: the
# JetStream tests start private servers of it (free loopback port, temporary store dir) that they
# kill and restart. Debian's `nats-server`, installed without starting a service (see
# install-debian-binary.sh).
#
#   TRACEBUDGET_NATS_SERVER  a binary to use instead of looking for one
exec bash "$(dirname "$0")/install-debian-binary.sh" nats-server TRACEBUDGET_NATS_SERVER nats-server \
    nats-server /usr/sbin/nats-server /usr/bin/nats-server
