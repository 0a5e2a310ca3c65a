#!/usr/bin/env bash
# Installs what crs's tests, demo and benchmarks run against, when it is
# missing: redis-server (Debian's package), zstd and jq (the README's
# inspection recipes). It installs nothing that is already on the PATH.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v jq >/dev/null 2>&1 || need+=(jq)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
