#!/bin/sh
# Runs Debian 12's own nodejs 18 without installing it: the .debs are fetched with `apt-get download` into a cache
# directory and extracted there, and node runs in a private mount namespace where /usr/share/nodejs (its
# externalized builtins) is the extracted copy. Nothing on the host changes. Needs root and the Debian 12 apt sources.
#   test/agent/debian-node18.sh dist/agent/epoch-agent.cjs --version
#   EPAG_AGENT_CMD="test/agent/debian-node18.sh dist/agent/epoch-agent.cjs" node --import tsx --test test/agent/intercept.test.ts
set -eu
DIR=${EPAG_NODE18_DIR:-/var/tmp/epag-node18}
R="$DIR/root"
if [ ! -x "$R/usr/bin/node" ]; then
  mkdir -p "$DIR/debs" "$R"
  V=$(apt-cache madison libnode108 | awk '{print $3}' | head -1)
  [ -n "$V" ] || { echo "debian-node18: libnode108 is not in the apt sources (Debian 12 needed)" >&2; exit 2; }
  (cd "$DIR/debs" && apt-get download "nodejs=$V" "libnode108=$V" node-acorn node-cjs-module-lexer node-undici libc-ares2 >/dev/null)
  for d in "$DIR"/debs/*.deb; do dpkg-deb -x "$d" "$R"; done
fi
exec unshare -m --propagation private sh -c 'mount --bind "$0/usr/share/nodejs" /usr/share/nodejs && LD_LIBRARY_PATH="$0/usr/lib/x86_64-linux-gnu" exec "$0/usr/bin/node" "$@"' "$R" "$@"
