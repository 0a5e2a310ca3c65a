#!/usr/bin/env bash
# Installs what crs's tests, demo and benchmarks run against, when it is
# missing: redis-server and redis-cli (Debian's packages), zstd and jq (the
# README's inspection recipes), and with the argument "s3" (make test)
# versitygw, the S3-compatible server the object-storage tests write to
# (built from the Go module proxy into $(go env GOPATH)/bin, about 2 minutes
# the first time). It installs nothing that is already there.
set -euo pipefail
VERSITYGW=v1.8.0 # internal/s3test.Version
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if [ "${1:-}" = s3 ] && ! command -v versitygw >/dev/null 2>&1 && ! [ -x "$gobin/versitygw" ]; then
  echo "building versitygw $VERSITYGW (the S3-compatible server of the object-storage tests)" >&2
  (cd / && GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW")
fi
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools) # redis-cli --cluster create, for the cluster tests
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v jq >/dev/null 2>&1 || need+=(jq)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# On a freshly booted machine another apt process (unattended upgrades, a
# first update) often holds the dpkg or lists lock: wait for it, up to 10
# minutes, instead of failing at once.
apt() {
  local i
  for i in $(seq 1 120); do
    if out=$($sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=5 "$@" 2>&1); then
      return 0
    fi
    case "$out" in
      *"Could not get lock"*|*"Unable to lock"*|*"is another process using it"*)
        [ "$i" -eq 1 ] && echo "waiting for another apt process to let go of its lock" >&2
        sleep 5 ;;
      *) printf '%s\n' "$out" >&2; return 1 ;;
    esac
  done
  printf '%s\n' "$out" >&2
  return 1
}
apt update -qq
apt install -y -qq "${need[@]}" >/dev/null
