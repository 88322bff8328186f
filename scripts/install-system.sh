#!/usr/bin/env bash
# Installs the servers the test suite and the local run start by themselves:
# MariaDB, Redis and nginx, Chromium (the docs page is rendered headless in a test),
# plus wrk for the benchmark. Does nothing when all
# are present. Needs root (or sudo) and a reachable Debian package mirror.
set -euo pipefail

need=()
have() { PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v "$1" >/dev/null 2>&1; }
have mariadbd || have mysqld || need+=(mariadb-server)
have redis-server || need+=(redis-server)
have nginx || need+=(nginx)
have wrk || need+=(wrk)
have chromium || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing system packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Package scripts may try to start the services; we start our own, so that may fail harmlessly.
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
