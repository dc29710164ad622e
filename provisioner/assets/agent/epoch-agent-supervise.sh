#!/bin/sh
# epoch-agent-supervise.sh: keeps epoch-agent running on hosts without systemd. Installed by epoch-provision
# (agent_service with init: supervisor) at /opt/epoch-agent/libexec/epoch-agent-supervise.sh; runs as root and
# starts the agent as the unprivileged epoch-agent user with no capabilities and no_new_privs.
# Usage: epoch-agent-supervise.sh start | stop | restart | status | supervise
#   start      detach a supervisor (pidfile), then wait until /healthz says ready (bounded)
#   stop       SIGTERM the supervisor; it forwards SIGTERM so the agent drains, SIGKILL after the drain bound
#   supervise  the foreground loop: restart on failure with exponential backoff (1s..60s, reset after 60s up)
# Settings are the EPOCH_* variables below: from /etc/epoch-agent/supervise.env when it exists (the provisioner
# writes it; it wins over the environment), else from the environment, else the defaults, which match the layout.
set -u
SUPERVISE_ENV=${EPOCH_SUPERVISE_ENV:-/etc/epoch-agent/supervise.env}
if [ -f "$SUPERVISE_ENV" ]; then . "$SUPERVISE_ENV"; fi
NODE=${EPOCH_NODE:-node}
AGENT=${EPOCH_AGENT_ENTRY:-/opt/epoch-agent/current/epoch-agent.cjs}
CONFIG=${EPOCH_AGENT_CONFIG:-/etc/epoch-agent/agent.json}
RUN_AS=${EPOCH_AGENT_USER:-epoch-agent}
RUN_DIR=${EPOCH_RUN_DIR:-/run/epoch-agent}
LOG=${EPOCH_AGENT_LOG:-/var/log/epoch-agent.log}
DRAIN_SECONDS=${EPOCH_DRAIN_SECONDS:-15}
WAIT_HEALTHY=${EPOCH_WAIT_HEALTHY:-/opt/epoch-agent/libexec/wait-healthy.cjs}
HEALTH_HOST=${EPOCH_HEALTH_HOST:-127.0.0.1}
HEALTH_PORT=${EPOCH_HEALTH_PORT:-9443}
READY_SECONDS=${EPOCH_READY_SECONDS:-30}
PIDFILE=$RUN_DIR/supervisor.pid

say() { echo "epoch-agent-supervise: $*"; }

supervisor_pid() {
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled PID: it must be this script in supervise mode.
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'supervise.sh supervise' || return 1
  echo "$pid"
}

supervise() {
  echo $$ > "$PIDFILE"
  stopping=0
  child=
  trap 'stopping=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM INT
  backoff=1
  while [ "$stopping" = 0 ]; do
    started=$(date +%s)
    setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
      "$NODE" "$AGENT" run --config "$CONFIG" &
    child=$!
    status=0
    wait "$child" || status=$?
    # A trapped signal interrupts wait; keep waiting while the agent drains.
    while kill -0 "$child" 2>/dev/null; do wait "$child" && status=0 || status=$?; done
    child=
    if [ "$stopping" = 1 ]; then break; fi
    if [ "$status" = 0 ]; then say "agent exited cleanly; not restarting"; break; fi
    ran=$(( $(date +%s) - started ))
    if [ "$ran" -ge 60 ]; then backoff=1; fi
    say "agent exited with status $status after ${ran}s; restarting in ${backoff}s"
    sleep "$backoff" &
    wait $! || true
    backoff=$(( backoff * 2 ))
    if [ "$backoff" -gt 60 ]; then backoff=60; fi
  done
  rm -f "$PIDFILE"
}

start() {
  if pid=$(supervisor_pid); then say "already running (supervisor pid $pid)"; return 0; fi
  mkdir -p "$RUN_DIR"
  chmod 0755 "$RUN_DIR"
  touch "$LOG"
  chmod 0640 "$LOG"
  setsid "$0" supervise < /dev/null >> "$LOG" 2>&1 &
  "$NODE" "$WAIT_HEALTHY" "$HEALTH_HOST" "$HEALTH_PORT" "$READY_SECONDS"
}

stop() {
  pid=$(supervisor_pid) || { say "not running"; return 0; }
  kill -TERM "$pid"
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $(( (DRAIN_SECONDS + 5) * 10 )) ]; then
      say "supervisor $pid still running after $((DRAIN_SECONDS + 5))s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
      break
    fi
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  rm -f "$PIDFILE"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) if pid=$(supervisor_pid); then say "running (supervisor pid $pid)"; else say "not running"; exit 3; fi ;;
  supervise) supervise ;;
  *) echo "usage: $0 start | stop | restart | status | supervise" >&2; exit 2 ;;
esac
