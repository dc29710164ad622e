#!/bin/sh
# Rebuilds the prebuilt addons: linux-x64 natively, linux-arm64 with Debian's gcc-aarch64-linux-gnu cross compiler.
# --nodedir=/usr uses the installed Node headers so node-gyp never downloads anything.
set -eu
cd "$(dirname "$0")"
npx node-gyp rebuild --nodedir=/usr
mkdir -p prebuilds/linux-x64
cp build/Release/origdst.node prebuilds/linux-x64/origdst.node
if command -v aarch64-linux-gnu-gcc >/dev/null; then
  CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar \
    npx node-gyp rebuild --nodedir=/usr --arch=arm64
  mkdir -p prebuilds/linux-arm64
  aarch64-linux-gnu-strip --strip-unneeded -o prebuilds/linux-arm64/origdst.node build/Release/origdst.node
else
  echo "aarch64-linux-gnu-gcc missing: linux-arm64 prebuild not rebuilt" >&2
fi
rm -rf build
