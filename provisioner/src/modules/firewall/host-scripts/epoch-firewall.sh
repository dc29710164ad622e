#!/bin/sh
# epoch-firewall: the on-host half of the firewall module (installed as /usr/local/lib/epoch-provision/epoch-firewall).
# Rules exist only while the agent is healthy (watch), every change is commit-confirmed (arm/confirm/revert), and
# only our own table or chains are ever touched.
#   watch                 load while the agent is healthy, unload when it is not (epoch-firewall.service, or the
#                         no-systemd watchdog started by `activate`)
#   wait-healthy | healthy | load | unload | remove | status
#                         unload = park: our chains stay (so conntrack keeps tracking every connection) but
#                         redirect nothing; remove = delete our table/chains entirely (removal, revert of a first install)
#   activate              (re)start the binding so the current rules file takes effect if the agent is healthy
#   deactivate            stop the binding and remove
#   arm GEN SECONDS       snapshot our files, then schedule `revert ID` after SECONDS (systemd timer or setsid);
#                         SECONDS=0: snapshot for `undo` only (removal, which can only make traffic flow directly)
#   confirm               disarm every armed revert (the controller calls this over a new connection)
#   revert ID | undo GEN  restore a snapshot (timer) / the newest snapshot of GEN (the runner's undo)
#   purge                 after removal: delete our state folders
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

# EPOCH_FW_ROOT relocates every file (tests in a network namespace use it; hosts never set it).
ROOT=${EPOCH_FW_ROOT:-}
CONF_DIR=$ROOT/etc/epoch-provision/firewall
CONF=$CONF_DIR/firewall.conf
STATE_DIR=$ROOT/var/lib/epoch-provision/firewall
SCRIPT=$ROOT/usr/local/lib/epoch-provision/epoch-firewall
UNIT=epoch-firewall.service
UNIT_FILE=$ROOT/etc/systemd/system/$UNIT
WATCHDOG_PID=$ROOT/run/epoch-firewall-watchdog.pid
LOCK_FILE=$ROOT/run/epoch-firewall.lock
TABLE=epoch_provision

# Defaults; firewall.conf (written by the provisioner) overrides them.
BACKEND=none
HEALTH_URL=http://127.0.0.1:9443/healthz
HEALTH_TIMEOUT=30
AGENT_UNIT=epoch-agent.service
NFT_FAMILIES=inet
[ -r "$CONF" ] && . "$CONF"
DROPIN=$ROOT/etc/systemd/system/$AGENT_UNIT.d/50-epoch-firewall.conf

say() { echo "epoch-firewall: $*" >&2; }
die() { say "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
has_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && have systemctl; }

# ---- health -------------------------------------------------------------------------------------------------------
healthy() {
  if have curl; then
    body=$(curl -fsS --max-time 1 "$HEALTH_URL" 2>/dev/null) || return 1
  elif have wget; then
    body=$(wget -q -T 1 -O - "$HEALTH_URL" 2>/dev/null) || return 1
  else
    node=$(command -v node || command -v nodejs || echo /opt/epoch-agent/runtime/bin/node)
    [ -x "$node" ] || return 1
    body=$("$node" -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(1000)}).then(r=>r.ok?r.text():Promise.reject()).then(t=>process.stdout.write(t),()=>process.exit(1))' "$HEALTH_URL" 2>/dev/null) || return 1
  fi
  # The agent's compact JSON without a process start (this runs twice a second on every host); any other spacing: grep.
  case $body in *'"ready":true'*) return 0 ;; esac
  printf '%s' "$body" | grep -q '"ready"[[:space:]]*:[[:space:]]*true'
}

# The watcher's poll without a process start: bash opens TCP itself (/dev/tcp) and times out a read (read -t), where
# curl costs ~12 ms of CPU per call, every poll, forever, on every host. Only for http://IPv4:PORT/PATH (the agent's
# health endpoint is plain HTTP on loopback); anything else, and any answer that is not a compact ready:true, goes
# through healthy() as before. Connecting to a listening loopback port does not block even when the agent hangs
# (the kernel completes it); the 1 s read timeout catches the hang.
fast_health_target() {
  [ -n "${BASH_VERSION:-}" ] || return 1
  rest=${HEALTH_URL#http://}
  [ "$rest" != "$HEALTH_URL" ] || return 1
  hostport=${rest%%/*}
  if [ "$hostport" = "$rest" ]; then FAST_PATH=/; else FAST_PATH=/${rest#*/}; fi
  FAST_HOST=${hostport%:*} FAST_PORT=${hostport##*:}
  case $FAST_HOST in ''|*[!0-9.]*) return 1 ;; esac
  case $FAST_PORT in ''|*[!0-9]*) return 1 ;; esac
}

healthy_fast() {
  # `command`: a failed redirection of the special builtin exec would end a POSIX-mode shell.
  { command exec 3<>"/dev/tcp/$FAST_HOST/$FAST_PORT"; } 2>/dev/null || return 1
  # A peer that already reset the connection must fail the write, not end the watcher with SIGPIPE (only for this
  # builtin: an ignored signal would be inherited by every command started later).
  trap '' PIPE
  printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$FAST_PATH" "$FAST_HOST" "$FAST_PORT" >&3 2>/dev/null
  trap - PIPE
  body=
  # Until the server closes (status 1 at end of input); above 128: timed out.
  IFS= read -r -d '' -t 1 body <&3 2>/dev/null
  rc=$?
  exec 3<&-
  [ "$rc" -le 1 ] || return 1
  case $body in 'HTTP/1.'[01]' 200 '*'"ready":true'*) return 0 ;; esac
  return 1
}

wait_healthy() {
  deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
  while ! healthy; do
    [ "$(date +%s)" -ge "$deadline" ] && die "agent not healthy at $HEALTH_URL after $HEALTH_TIMEOUT s; rules not loaded (traffic stays direct)"
    sleep 0.5
  done
}

# ---- iptables helpers -----------------------------------------------------------------------------------------------
# $1 = save command, $2 = restore command. Removes our jumps and chains in one restore, touching nothing else.
ipt_remove_once() {
  save=$($1 2>/dev/null) || return 0
  printf '%s\n' "$save" | grep -q '^\*nat' || return 0
  nat=$(printf '%s\n' "$save" | sed -n '/^\*nat/,/^COMMIT/p')
  lines=$(printf '%s\n' "$nat" | sed -n -E 's/^-A (OUTPUT|PREROUTING) -j (EPOCH_OUTPUT|EPOCH_PREROUTING)$/-D \1 -j \2/p')
  for ch in EPOCH_OUTPUT EPOCH_PREROUTING; do
    if printf '%s\n' "$nat" | grep -q "^:$ch "; then lines="$lines
-F $ch
-X $ch"; fi
  done
  [ -n "$(printf '%s' "$lines" | tr -d '[:space:]')" ] || return 0
  printf '*nat\n%s\nCOMMIT\n' "$lines" | $2 -w --noflush
}

# Someone else (the agent's ExecStopPost, the watcher) may remove the same chains at the same moment: re-read, retry.
ipt_remove() {
  for attempt in 1 2 3; do
    ipt_remove_once "$1" "$2" 2>/dev/null && return 0
    sleep 0.2
  done
  ipt_remove_once "$1" "$2" || die "$2 failed removing our chains"
}

# $1 = save, $2 = restore, $3 = rules file. One atomic restore: declare (= flush) and fill our chains from the file,
# keep exactly one jump per chain (an existing single jump is left alone, surplus ones deleted, a missing one
# inserted by the file's `-I` line), and drop our chains the file no longer declares. Nothing else is touched.
ipt_load() {
  [ -r "$3" ] || return 0
  save=$($1 2>/dev/null) || save=
  nat=$(printf '%s\n' "$save" | sed -n '/^\*nat/,/^COMMIT/p')
  keep_jump=
  {
    echo '*nat'
    sed -n -E '/^:EPOCH_/p' "$3"
    for pair in OUTPUT:EPOCH_OUTPUT PREROUTING:EPOCH_PREROUTING; do
      builtin=${pair%%:*}; ch=${pair#*:}
      n=$(printf '%s\n' "$nat" | grep -c -x -e "-A $builtin -j $ch")
      wanted=0; grep -q "^:$ch " "$3" && wanted=1
      while [ "$n" -gt "$wanted" ]; do echo "-D $builtin -j $ch"; n=$((n - 1)); done
      [ "$wanted" = 1 ] && [ "$n" = 1 ] && keep_jump="$keep_jump -e /^-I[[:space:]]$builtin[[:space:]]1[[:space:]]-j[[:space:]]$ch\$/d"
      if [ "$wanted" = 0 ] && printf '%s\n' "$nat" | grep -q "^:$ch "; then printf -- '-F %s\n-X %s\n' "$ch" "$ch"; fi
    done
    # keep_jump is a list of sed arguments without spaces; no globbing while it is split.
    set -f
    sed -e '1,/^\*nat$/d' -e '/^:EPOCH_/d' $keep_jump "$3"
    set +f
  } | $2 -w --noflush || die "$2 -w --noflush failed loading $3"
}

# iptables-nft creates `table ip nat` and its base chains on first use (our jump into EPOCH_PREROUTING creates
# PREROUTING). What the host did not have before we came (recorded at our first install) is dropped again once it
# holds no rules, so removal leaves `nft list ruleset` as it was.
nat_skeleton_only() {
  printf '%s\n' "$1" | grep -v -q -E '^[[:space:]]*(table .*\{|chain [A-Z]+ \{|type nat hook .*|\}|)$' && return 1
  return 0
}
ipt_nft_drop_created_nat() {
  fam=$1
  have nft || return 0
  nft list table "$fam" nat >/dev/null 2>&1 || return 0
  if [ -f "$CONF_DIR/pristine-nat-chains-$fam" ]; then
    for ch in PREROUTING INPUT OUTPUT POSTROUTING; do
      grep -q -x "$ch" "$CONF_DIR/pristine-nat-chains-$fam" && continue
      chain=$(nft list chain "$fam" nat "$ch" 2>/dev/null) || continue
      nat_skeleton_only "$chain" && nft delete chain "$fam" nat "$ch"
    done
  fi
  if [ -f "$CONF_DIR/pristine-no-nat-$fam" ] && nat_skeleton_only "$(nft list table "$fam" nat)"; then
    nft delete table "$fam" nat
  fi
  return 0
}

# ---- load / unload --------------------------------------------------------------------------------------------------
nft_remove_ours() {
  have nft || return 0
  for fam in inet ip ip6; do
    if nft list table "$fam" "$TABLE" >/dev/null 2>&1; then
      printf 'table %s %s\ndelete table %s %s\n' "$fam" "$TABLE" "$fam" "$TABLE" | nft -f - || die "nft could not delete table $fam $TABLE"
    fi
  done
}

remove_unlocked() {
  nft_remove_ours
  have iptables-legacy-save && { ipt_remove iptables-legacy-save iptables-legacy-restore; ipt_remove ip6tables-legacy-save ip6tables-legacy-restore; }
  have iptables-nft-save && { ipt_remove iptables-nft-save iptables-nft-restore; ipt_remove ip6tables-nft-save ip6tables-nft-restore; }
  [ "$BACKEND" = iptables-nft ] && { ipt_nft_drop_created_nat ip; ipt_nft_drop_created_nat ip6; }
  return 0
}

# The backend changed (e.g. Docker brought iptables-legacy rules): our rules must live in one backend only.
remove_other_backends() {
  [ "$1" != nft ] && nft_remove_ours
  if [ "$1" != iptables-legacy ] && have iptables-legacy-save; then
    ipt_remove iptables-legacy-save iptables-legacy-restore; ipt_remove ip6tables-legacy-save ip6tables-legacy-restore
  fi
  if [ "$1" != iptables-nft ] && have iptables-nft-save; then
    ipt_remove iptables-nft-save iptables-nft-restore; ipt_remove ip6tables-nft-save ip6tables-nft-restore
  fi
  return 0
}

# $1 = rules (redirecting) or parked (chains kept, nothing redirected). Both files replace our table/chains in one
# transaction without deleting them, so the nat hooks and conntrack stay in place across every transition.
apply_unlocked() {
  kind=$1
  # Parked files written by an older module version may be missing (e.g. a revert to an old snapshot): removing
  # our rules keeps the promise that a dead agent never leaves a redirect behind.
  if [ "$kind" = parked ] && [ "$BACKEND" != none ] && [ ! -r "$CONF_DIR/parked.nft" ] && [ ! -r "$CONF_DIR/parked.v4" ] && [ ! -r "$CONF_DIR/parked.v6" ]; then
    say "no parked rules in $CONF_DIR: removing our rules instead (traffic flows directly)"
    remove_unlocked
    return 0
  fi
  case "$BACKEND" in
    nft)
      [ -r "$CONF_DIR/$kind.nft" ] || die "no $CONF_DIR/$kind.nft"
      nft -f "$CONF_DIR/$kind.nft" || die "nft -f $CONF_DIR/$kind.nft failed"
      # Families we no longer render (e.g. inet replaced by ip + ip6) must not linger.
      for fam in inet ip ip6; do
        case " $NFT_FAMILIES " in *" $fam "*) continue ;; esac
        if nft list table "$fam" "$TABLE" >/dev/null 2>&1; then printf 'table %s %s\ndelete table %s %s\n' "$fam" "$TABLE" "$fam" "$TABLE" | nft -f -; fi
      done
      remove_other_backends nft ;;
    iptables-nft|iptables-legacy)
      v=${BACKEND#iptables-}
      remove_other_backends "$BACKEND"
      if [ -r "$CONF_DIR/rules.v4" ]; then
        [ -r "$CONF_DIR/$kind.v4" ] || die "no $CONF_DIR/$kind.v4"
        ipt_load "iptables-$v-save" "iptables-$v-restore" "$CONF_DIR/$kind.v4"
      else ipt_remove "iptables-$v-save" "iptables-$v-restore"; fi
      if [ -r "$CONF_DIR/rules.v6" ]; then
        [ -r "$CONF_DIR/$kind.v6" ] || die "no $CONF_DIR/$kind.v6"
        ipt_load "ip6tables-$v-save" "ip6tables-$v-restore" "$CONF_DIR/$kind.v6"
      else ipt_remove "ip6tables-$v-save" "ip6tables-$v-restore"; fi ;;
    none) remove_unlocked ;;
    *) die "unknown BACKEND=$BACKEND in $CONF" ;;
  esac
}

# The watcher, `activate`, the agent's ExecStopPost and a revert can all act at once: one at a time, or two
# iptables loads could both see "no jump yet" and insert two.
locked() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  (
    if have flock; then flock -w 30 9 || die "could not take $LOCK_FILE within 30 s"; fi
    "$@"
  ) 9>"$LOCK_FILE"
}
load() { locked apply_unlocked rules; }
park() { locked apply_unlocked parked; }
remove_all() { locked remove_unlocked; }

# Cheap check that our redirecting rules are live (an ExecStopPost of the agent may have parked them behind the
# watcher's back).
loaded() {
  case "$BACKEND" in
    nft) fam=${NFT_FAMILIES%% *}; out=$(nft list table "$fam" "$TABLE" 2>/dev/null); case $out in *' redirect to '*) ;; *) return 1 ;; esac ;;
    iptables-nft|iptables-legacy)
      v=${BACKEND#iptables-}
      if [ -r "$CONF_DIR/rules.v4" ]; then s=iptables-$v-save; else s=ip6tables-$v-save; fi
      out=$($s 2>/dev/null)
      printf '%s\n' "$out" | grep -q -E '^-A (OUTPUT|PREROUTING) -j EPOCH_' &&
        printf '%s\n' "$out" | grep -q -E '^-A EPOCH_(OUTPUT|PREROUTING) .*-j REDIRECT' ;;
    *) return 0 ;;
  esac
}

# ---- the binding: rules only while the agent is healthy --------------------------------------------------------------
watch() {
  # Under bash (POSIX mode, the same semantics as sh) the poll needs no process start at all; see healthy_fast.
  if [ -z "${BASH_VERSION:-}" ] && have bash; then exec bash --posix "$0" watch; fi
  trap '(park); exit 0' TERM INT HUP
  fast=no
  if fast_health_target; then fast=yes; fi
  # The pause between polls: read -t on a FIFO nobody writes to, instead of starting sleep (bash only).
  pause_fd=no
  if [ -n "${BASH_VERSION:-}" ] && fifo=$(mktemp -u "${TMPDIR:-/tmp}/epoch-firewall-pause.XXXXXX") && mkfifo -m 600 "$fifo"; then
    if { command exec 4<>"$fifo"; } 2>/dev/null; then pause_fd=yes; fi
    rm -f "$fifo"
  fi
  # unknown: the first unhealthy answer removes whatever is loaded; the first healthy one (re)loads atomically.
  state=unknown
  # With systemd the rules are unloaded the moment the agent stops or crashes (BindsTo=, ExecStopPost=): the poll
  # only has to notice a hung agent, every 2 s. Without systemd it is what notices a dead agent: every 0.5 s.
  # Under bash a healthy poll starts no process; under sh, curl and sleep. The live-rules read (one nft or
  # iptables-save start) runs every 10 s with systemd, where an agent restart restarts this watcher too (BindsTo=,
  # Wants=) and it loads afresh, so the read only catches someone else's flush; every 2 s without systemd.
  if has_systemd; then poll=2 loaded_every=5; else poll=0.5 loaded_every=4; fi
  tick=0
  while :; do
    tick=$(( (tick + 1) % loaded_every ))
    # Subshells: a failing load/unload (die) must not end the watcher.
    if { [ "$fast" = yes ] && healthy_fast; } || healthy; then
      # Whether the rules are still live (an ExecStopPost or someone's flush may have parked or removed them) is
      # read every few polls (above); until then traffic flows directly.
      if [ "$state" != up ] || { [ "$tick" -eq 0 ] && ! loaded; }; then (load) && state=up && say "agent healthy: rules loaded"; fi
    elif [ "$state" != down ]; then
      # One retry so a single slow answer does not flap the rules; a dead agent refuses at once.
      sleep 0.3
      if ! healthy; then (park) && state=down && say "agent not healthy: rules parked, traffic flows directly"; fi
    fi
    if [ "$pause_fd" = yes ]; then read -r -t "$poll" -u 4 pause_line; else sleep "$poll" & wait $!; fi
  done
}

activate() {
  if has_systemd; then
    systemctl daemon-reload
    if [ "$BACKEND" = none ] || [ ! -f "$UNIT_FILE" ]; then
      systemctl stop "$UNIT" 2>/dev/null; remove_all; return 0
    fi
    # Restart only while the agent runs: starting our unit would pull the agent in through BindsTo.
    if systemctl is-active --quiet "$AGENT_UNIT"; then
      systemctl restart "$UNIT" || die "systemctl restart $UNIT failed"
      wait_healthy
      load
    else
      park
    fi
  else
    stop_watchdog
    if [ "$BACKEND" = none ]; then remove_all; return 0; fi
    if healthy; then load; else park; fi
    mkdir -p "$(dirname "$WATCHDOG_PID")"
    # The pid is recorded before returning, so an immediate stop_watchdog never misses it. A background job of a
    # non-interactive shell is not a process-group leader, so setsid execs in place and $! is the watcher itself.
    setsid "$SCRIPT" watch </dev/null >/dev/null 2>&1 &
    echo $! > "$WATCHDOG_PID"
  fi
}

stop_watchdog() {
  if [ -r "$WATCHDOG_PID" ]; then
    pid=$(cat "$WATCHDOG_PID")
    case "$pid" in
      ''|*[!0-9]*) ;;
      *) if kill "$pid" 2>/dev/null; then
           # Its TERM trap parks; wait so that it never races a removal.
           n=0; while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
         fi ;;
    esac
    rm -f "$WATCHDOG_PID"
  fi
}

deactivate() {
  if has_systemd; then systemctl stop "$UNIT" 2>/dev/null; else stop_watchdog; fi
  remove_all
}

# ---- commit-confirmed -------------------------------------------------------------------------------------------------
managed_files() {
  echo "$CONF"; echo "$CONF_DIR/rules.nft"; echo "$CONF_DIR/rules.v4"; echo "$CONF_DIR/rules.v6"
  echo "$CONF_DIR/parked.nft"; echo "$CONF_DIR/parked.v4"; echo "$CONF_DIR/parked.v6"
  echo "$CONF_DIR/pristine-no-nat-ip"; echo "$CONF_DIR/pristine-no-nat-ip6"
  echo "$CONF_DIR/pristine-nat-chains-ip"; echo "$CONF_DIR/pristine-nat-chains-ip6"
  echo "$CONF_DIR/created-dirs"
  echo "$SCRIPT"; echo "$UNIT_FILE"; echo "$DROPIN"
}

# The folders our files live in, deepest first. The ones missing before our first install are ours to remove again
# (only once empty); a folder that existed before is never removed.
managed_dirs() {
  echo "$CONF_DIR"; echo "$ROOT/etc/epoch-provision"; echo "$(dirname "$DROPIN")"; echo "$(dirname "$SCRIPT")"
}

missing_dirs() {
  managed_dirs | while read -r d; do [ -d "$d" ] || echo "$d"; done
}

# rmdir each listed folder (from stdin) that exists and is empty.
remove_empty_dirs() {
  while read -r d; do
    [ -n "$d" ] && [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  return 0
}

arm() {
  gen=$1; secs=$2
  case "$gen$secs" in *[!0-9a-z-]*) die "bad arm arguments: $gen $secs" ;; esac
  id=$(date +%s)-$gen
  dir=$STATE_DIR/armed-$id
  mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/files" || die "cannot create $dir.tmp"
  missing_dirs > "$dir.tmp/absent-dirs"
  managed_files | while read -r f; do
    if [ -e "$f" ]; then mkdir -p "$dir.tmp/files$(dirname "$f")" && cp -p "$f" "$dir.tmp/files$f"; else echo "$f" >> "$dir.tmp/absent"; fi
  done
  [ -f "$dir.tmp/absent" ] || : > "$dir.tmp/absent"
  # The revert must not depend on the script we are about to replace.
  cp "$0" "$dir.tmp/epoch-firewall" || die "cannot copy $0 into the snapshot"
  chmod 755 "$dir.tmp/epoch-firewall"
  mv "$dir.tmp" "$dir"
  record_pristine
  if [ "$secs" = 0 ]; then
    # Snapshot only (removal): kept for `undo`, never reverted by a timer.
    mv "$dir" "$STATE_DIR/confirmed-$id"
    echo "snapshot $id (no auto-revert)"
    return 0
  fi
  if has_systemd && have systemd-run; then
    systemctl reset-failed "epoch-fw-revert-$id.timer" "epoch-fw-revert-$id.service" >/dev/null 2>&1
    systemd-run --quiet --unit="epoch-fw-revert-$id" --description="epoch-provision firewall auto-revert $id" \
      --on-active="$secs" --timer-property=AccuracySec=1s \
      "$dir/epoch-firewall" revert "$id" || die "systemd-run could not arm the auto-revert"
    echo systemd > "$dir/kind"
  else
    setsid sh -c 'sleep "$2"; exec "$1/epoch-firewall" revert "$3"' sh "$dir" "$secs" "$id" </dev/null >/dev/null 2>&1 &
    echo $! > "$dir/sleeper.pid"
    echo setsid > "$dir/kind"
  fi
  echo "armed $id: reverts in $secs s unless confirmed"
}

# Remember which nat tables and base chains existed before our first install (see ipt_nft_drop_created_nat).
record_pristine() {
  [ -e "$CONF" ] && return 0
  missing=$(missing_dirs)
  mkdir -p "$CONF_DIR"
  # For purge (uninstall without the journal): the folders our first install creates.
  [ -e "$CONF_DIR/created-dirs" ] || printf '%s\n' "$missing" | sed '/^$/d' > "$CONF_DIR/created-dirs"
  if have nft; then
    for fam in ip ip6; do
      if listing=$(nft list table "$fam" nat 2>/dev/null); then
        printf '%s\n' "$listing" | sed -n -E 's/^[[:space:]]*chain ([A-Za-z0-9_-]+) \{$/\1/p' > "$CONF_DIR/pristine-nat-chains-$fam"
      else
        : > "$CONF_DIR/pristine-no-nat-$fam"
      fi
    done
  fi
}

disarm() {
  dir=$1
  id=${dir##*/}; id=${id#*-}
  if [ "$(cat "$dir/kind" 2>/dev/null)" = systemd ]; then
    systemctl stop "epoch-fw-revert-$id.timer" >/dev/null 2>&1
    systemctl reset-failed "epoch-fw-revert-$id.timer" "epoch-fw-revert-$id.service" >/dev/null 2>&1
  elif [ -r "$dir/sleeper.pid" ]; then
    pid=$(cat "$dir/sleeper.pid"); case "$pid" in ''|*[!0-9]*) ;; *) kill "$pid" 2>/dev/null ;; esac
  fi
}

confirm() {
  n=0
  for dir in "$STATE_DIR"/armed-*; do
    [ -d "$dir" ] || continue
    id=${dir##*/armed-}
    # The rename is the commit point: whichever of confirm and revert renames first wins.
    mv "$dir" "$STATE_DIR/confirmed-$id" 2>/dev/null || continue
    disarm "$STATE_DIR/confirmed-$id"
    n=$((n + 1))
    echo "confirmed $id"
  done
  # Keep the newest few confirmed snapshots for `undo`, drop older ones.
  for prefix in confirmed reverted; do
    ls -1 "$STATE_DIR" | grep "^$prefix-" | sort -t- -k2,2n | head -n -5 | while read -r old; do rm -rf "$STATE_DIR/$old"; done
  done
  echo "confirmed $n armed change(s)"
}

restore_snapshot() {
  dir=$1
  # Going back to no binding at all: stop it while its script still exists. Its ExecStopPost runs that script;
  # stopped after the script is gone, systemd keeps the unit as failed (203/EXEC) and the host reports "degraded".
  if has_systemd && [ ! -e "$dir/files$SCRIPT" ]; then systemctl stop "$UNIT" >/dev/null 2>&1; fi
  managed_files | while read -r f; do
    if [ -e "$dir/files$f" ]; then mkdir -p "$(dirname "$f")" && cp -p "$dir/files$f" "$f"
    elif grep -qxF "$f" "$dir/absent"; then rm -f "$f"; fi
  done
  # Re-read the restored configuration, then make the live state match it.
  BACKEND=none; NFT_FAMILIES=inet
  [ -r "$CONF" ] && . "$CONF"
  if [ -x "$SCRIPT" ] && [ "$BACKEND" != none ]; then
    "$SCRIPT" activate
  else
    if has_systemd; then
      systemctl stop "$UNIT" >/dev/null 2>&1; systemctl reset-failed "$UNIT" >/dev/null 2>&1; systemctl daemon-reload
    else stop_watchdog; fi
    remove_all
  fi
  # The folders that did not exist when the snapshot was taken go again (older snapshots have no list).
  [ -r "$dir/absent-dirs" ] && remove_empty_dirs < "$dir/absent-dirs"
  return 0
}

revert() {
  id=$1
  src=$STATE_DIR/armed-$id
  mv "$src" "$STATE_DIR/reverting-$id" 2>/dev/null || { say "nothing armed as $id (confirmed or reverted already)"; exit 0; }
  say "not confirmed in time: reverting $id"
  restore_snapshot "$STATE_DIR/reverting-$id"
  mv "$STATE_DIR/reverting-$id" "$STATE_DIR/reverted-$id"
  rm -rf "$STATE_DIR/reverted-$id/files"
}

undo() {
  gen=$1
  case "$gen" in *[!0-9a-z]*|'') die "bad generation: $gen" ;; esac
  name=$(ls -1 "$STATE_DIR" 2>/dev/null | grep -E "^(armed|confirmed)-[0-9]+-$gen\$" | sort -t- -k2,2n | tail -n 1)
  [ -n "$name" ] || { say "no snapshot for generation $gen"; exit 0; }
  id=${name#*-}
  mv "$STATE_DIR/$name" "$STATE_DIR/reverting-$id" || die "cannot claim $STATE_DIR/$name"
  disarm "$STATE_DIR/reverting-$id"
  restore_snapshot "$STATE_DIR/reverting-$id"
  mv "$STATE_DIR/reverting-$id" "$STATE_DIR/reverted-$id"
  echo "undone $id"
}

purge() {
  # An auto-revert still armed by an interrupted run (killed before its confirm) would fire after this removal and
  # act on whatever is installed by then, e.g. revert a reinstall made within its window. Disarm it as confirm does;
  # its snapshot stays for `undo` of that run.
  confirm > /dev/null
  deactivate
  created=$(cat "$CONF_DIR/created-dirs" 2>/dev/null)
  managed_files | while read -r f; do rm -f "$f"; done
  rm -rf "$CONF_DIR"
  # /etc/epoch-provision is ours by name; the other folders only when our first install created them.
  { echo "$ROOT/etc/epoch-provision"; printf '%s\n' "$created"; } | remove_empty_dirs
  return 0
}

status() {
  echo "backend=$BACKEND healthy=$(healthy && echo yes || echo no) loaded=$(loaded && echo yes || echo no)"
  ls -1 "$STATE_DIR" 2>/dev/null | grep -E '^armed-' || true
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  watch) watch ;;
  healthy) healthy ;;
  wait-healthy) wait_healthy ;;
  load) load ;;
  unload) park ;;
  remove) remove_all ;;
  activate) activate ;;
  deactivate) deactivate ;;
  arm) [ $# -eq 2 ] || die "usage: arm GEN SECONDS"; arm "$1" "$2" ;;
  confirm) confirm ;;
  revert) [ $# -eq 1 ] || die "usage: revert ID"; revert "$1" ;;
  undo) [ $# -eq 1 ] || die "usage: undo GEN"; undo "$1" ;;
  purge) purge ;;
  status) status ;;
  *) die "usage: epoch-firewall watch|healthy|wait-healthy|load|unload|remove|activate|deactivate|arm|confirm|revert|undo|purge|status" ;;
esac
