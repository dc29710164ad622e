#!/bin/sh
# Moves itself into each given cgroup (by writing to the cgroup.procs files before `--`), then execs the command.
# The lab starts every systemd-nspawn this way, so each host's systemd owns a cgroup of its own (lab-notes: hosts
# sharing a cgroup stop and kill each other's services).
#   start-in-cgroup.sh /sys/fs/cgroup/.../cgroup.procs [...] -- COMMAND [ARG...]
set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  echo "$$" > "$1"
  shift
done
[ "$#" -gt 1 ] || { echo "usage: start-in-cgroup.sh PROCS_FILE... -- COMMAND [ARG...]" >&2; exit 2; }
shift
exec "$@"
