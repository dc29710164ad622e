#!/bin/sh
# Debian 12's own nginx without installing it: the .deb is fetched with `apt-get download` into a cache directory
# and extracted there (dpkg-deb -x); nothing under /etc, no service, no user is added. Prints the path of the
# extracted binary. The binary itself needs only libraries every Debian 12 host has (libc6, libcrypt1, libpcre2-8-0,
# libssl3, zlib1g); this script refuses a binary whose libraries do not all resolve. nginx-common (the Debian
# config, logrotate and systemd files) is not needed: the tests write their own nginx.conf with temp paths.
# Needs root (apt's cache lock) and the Debian 12 apt sources.
#   test/agent/debian-nginx.sh            -> /var/tmp/epag-nginx/root/usr/sbin/nginx
#   "$(test/agent/debian-nginx.sh)" -V
set -eu
DIR=${EPAG_NGINX_DIR:-/var/tmp/epag-nginx}
BIN="$DIR/root/usr/sbin/nginx"
fail() { echo "debian-nginx: $*" >&2; exit 2; }
candidate() { apt-cache policy nginx 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [ ! -x "$BIN" ]; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || fail "apt-get and dpkg-deb are needed (Debian 12)"
  V=$(candidate)
  if [ -z "$V" ] || [ "$V" = "(none)" ]; then
    # A fresh machine whose package lists were never fetched (.ci/run and ensure-prereqs do the same update).
    apt-get update -qq >/dev/null 2>&1 || true
    V=$(candidate)
  fi
  { [ -n "$V" ] && [ "$V" != "(none)" ]; } || fail "the nginx package is not in the apt sources (Debian 12 needed)"
  case "$V" in 1.22.*) ;; *) echo "debian-nginx: note: nginx $V is not Debian 12's 1.22" >&2 ;; esac
  mkdir -p "$DIR"
  # Download and extract in a private directory, then move it into place: two runs at once do not see half a tree.
  TMP=$(mktemp -d "$DIR/.fetch.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  chown _apt "$TMP" 2>/dev/null || true # apt downloads as its _apt user when that user can write here (else it warns)
  (cd "$TMP" && apt-get download -q "nginx=$V" >/dev/null) || fail "apt-get download nginx=$V failed"
  mkdir "$TMP/root"
  dpkg-deb -x "$TMP"/nginx_*.deb "$TMP/root" || fail "dpkg-deb -x failed"
  [ -x "$TMP/root/usr/sbin/nginx" ] || fail "the nginx .deb has no usr/sbin/nginx"
  if command -v ldd >/dev/null && ldd "$TMP/root/usr/sbin/nginx" | grep -q 'not found'; then
    fail "libraries of the extracted nginx are missing on this host: $(ldd "$TMP/root/usr/sbin/nginx" | grep 'not found' | tr -s ' \t' ' ')"
  fi
  if [ ! -x "$BIN" ]; then # (another run may have finished first)
    rm -rf "$DIR/root"
    mv "$TMP/root" "$DIR/root" 2>/dev/null || [ -x "$BIN" ] || fail "could not move the extracted tree into $DIR"
  fi
fi
echo "$BIN"
