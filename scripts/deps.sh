#!/bin/sh
# Installs what building, running and testing Orrery needs on Debian 12, and
# only what is missing. Needs root for apt-get (or sudo).
#   scripts/deps.sh          build and run
#   scripts/deps.sh test     also the test clients (Python websockets, Node ws), Redis, clang-format
set -eu
cd "$(dirname "$0")/.."

pkgs="build-essential cmake pkg-config libjansson-dev libssl-dev node-llhttp libhiredis-dev liblua5.4-dev zlib1g-dev"
if [ "${1:-}" = test ] || [ "${1:-}" = bench ]; then
  pkgs="$pkgs libcriterion-dev python3 python3-websockets nodejs npm chromium redis-server clang-format"
fi
if [ "${1:-}" = bench ]; then
  pkgs="$pkgs libwebsockets-dev util-linux"
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node and npm may come from elsewhere than Debian (a newer Node ships npm).
case " $missing " in *" nodejs "*) command -v node >/dev/null && missing=$(echo "$missing" | sed 's/ nodejs//');; esac
case " $missing " in *" npm "*) command -v npm >/dev/null && missing=$(echo "$missing" | sed 's/ npm//');; esac

if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

# npm packages for the tests, reinstalled whenever the lock file changes.
if [ "${1:-}" = test ]; then
  want=$(sha256sum tests/integration/package-lock.json | cut -d' ' -f1)
  have=$(cat tests/integration/node_modules/.orrery-lock 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "deps: npm ci in tests/integration"
    (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > tests/integration/node_modules/.orrery-lock
  fi
fi
