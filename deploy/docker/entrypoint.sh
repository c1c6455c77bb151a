#!/bin/sh
# The images' entrypoint (run under tini, which forwards signals): derives
# the node's identity from the pod, then execs `brigade serve`, so SIGTERM
# reaches the node itself (it drains: sessions hand over to the other
# members, forwarded requests finish, then it leaves and exits 0).
#
# Configuration comes from the environment (every key of config/brigade.conf
# is BRIGADE_<KEY>; BRIGADE_CONFIG names a config file) and from arguments,
# which are passed on to `brigade serve`. Derived here when not set:
#   BRIGADE_NODE_NAME  POD_NAME (a StatefulSet's stable pod name), else the
#                      host name: a restarted pod takes its sessions back at once
#   BRIGADE_ADVERTISE  POD_IP:BRIGADE_PORT (IPv6 in brackets): the address peers dial
#   BRIGADE_BIN        the brigade binary (default: brigade on PATH)
# Secrets are files (BRIGADE_API_KEYS_FILE, BRIGADE_STORE_PASSWORD_FILE,
# BRIGADE_ADMIN_TOKEN_FILE), never arguments. tests/deploy/entrypoint_test.py
# runs this script as a process.
set -eu

if [ -z "${BRIGADE_NODE_NAME:-}" ]; then
  BRIGADE_NODE_NAME=${POD_NAME:-$(hostname)}
  export BRIGADE_NODE_NAME
fi
if [ -z "${BRIGADE_ADVERTISE:-}" ] && [ -n "${POD_IP:-}" ]; then
  case "$POD_IP" in
    *:*) BRIGADE_ADVERTISE="[$POD_IP]:${BRIGADE_PORT:-7420}" ;;
    *) BRIGADE_ADVERTISE="$POD_IP:${BRIGADE_PORT:-7420}" ;;
  esac
  export BRIGADE_ADVERTISE
fi
exec "${BRIGADE_BIN:-brigade}" serve "$@"
