#!/usr/bin/env bash
# Usage: scripts/workload.sh NAME
# Fetches Debian's source package NAME (e.g. lua5.4, leveldb) once, unpacks its upstream
# sources under ${KILN_WORKLOADS:-~/.cache/kiln-workloads}/NAME/src and prints that path.
# Needs root (or sudo) the first time, to enable Debian's source index for apt.
set -euo pipefail
name=${1:?usage: workload.sh NAME}
root=${KILN_WORKLOADS:-$HOME/.cache/kiln-workloads}/$name
if [ -f "$root/.ready" ]; then echo "$root/src"; exit 0; fi

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have_src_index() { grep -rqsE '^(Types:.*deb-src|deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; }
if ! have_src_index; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      sudo_ tee /etc/apt/sources.list.d/kiln-deb-src.sources >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | sudo_ tee /etc/apt/sources.list.d/kiln-deb-src.list >/dev/null
  fi
  sudo_ apt-get update -qq >&2
fi

rm -rf "$root"
mkdir -p "$root/dl" "$root/unpack"
if ! (cd "$root/dl" && apt-get source --download-only -qq "$name" >&2); then
  sudo_ apt-get update -qq >&2
  (cd "$root/dl" && apt-get source --download-only -qq "$name" >&2)
fi
tarball=$(find "$root/dl" -name '*.orig.tar.*' | head -n 1)
[ -n "$tarball" ] || tarball=$(find "$root/dl" -name '*.tar.*' ! -name '*.debian.tar.*' | head -n 1)
tar -xf "$tarball" -C "$root/unpack"
top=$(find "$root/unpack" -mindepth 1 -maxdepth 1 -type d | head -n 1)
mv "$top" "$root/src"
rm -rf "$root/unpack" "$root/dl"
touch "$root/.ready"
echo "$root/src"
