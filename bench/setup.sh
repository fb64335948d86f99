#!/usr/bin/env bash
# Installs the Debian packages `npm run bench` needs for the peer (the seed system's
# architecture): PostgreSQL (initdb and postgres under /usr/lib/postgresql/*/bin) and
# redis-server. The bench starts its own instances on 127.0.0.1 with data in a temp dir, so
# the packages' own services are neither used nor started here. Safe to run again.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench/setup.sh: postgresql and redis-server are installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "bench/setup.sh: installing ${need[*]}"
$sudo apt-get update -qq
# RUNLEVEL=1 makes invoke-rc.d start no service during the install.
$sudo env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
