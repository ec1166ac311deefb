#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those missing.
# Called by `make run` and `make check`, so a fresh machine needs nothing by hand.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libssl-dev libconfig-dev libmnl-dev libcunit1-dev libhttp-parser-dev
  libcurl4-openssl-dev
  curl openssl python3 iproute2 procps psmisc
  prosody prosody-modules go-sendxmpp lua-bitop ejabberd
  nodejs
  nginx-light wrk
  libclang-rt-14-dev clang
  man-db groff-base
  logrotate
  libfuse3-dev fuse3
  chromium
  glusterfs-server glusterfs-client haproxy
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# The machine's Node.js may come with its own npm; Debian's npm would conflict.
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged daemons on install; the tests run their own instances.
for svc in prosody nginx ejabberd haproxy glusterd; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
