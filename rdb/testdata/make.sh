#!/usr/bin/env bash
# Makes the golden RDB files of this folder: one per server version at
# hand (redis-server on the PATH and ../shared/servers beside the project),
# each named by what the server reports and the RDB version it wrote,
# filled with small values of every type, streams in every state (groups,
# consumers with and without pending entries, deleted pending entries,
# and on Redis 8.6 idempotent producers) and, where the server has them,
# hash field expiries. Run from anywhere; then `go test ./rdb -update`
# writes the golden .jsonl beside each file. Servers are chosen by what
# they report, never by folder name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
bins=()
command -v redis-server >/dev/null && bins+=("$(command -v redis-server)")
for b in "$root"/../shared/servers/*/*-server; do [ -x "$b" ] && bins+=("$b"); done
port=7790
for bin in "${bins[@]}"; do
  port=$((port + 1))
  dir=$(mktemp -d)
  "$bin" --port $port --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes --logfile "$dir/log" >/dev/null
  r() { redis-cli -p $port "$@" >/dev/null 2>&1 || true; }
  for i in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
  v=$(redis-cli -p $port info server | tr -d '\r' | awk -F: '$1=="valkey_version"{print "valkey-"$2; f=1} $1=="redis_version"{rv="redis-"$2} END{if(!f)print rv}')
  r set s "plain string"
  r set n 12345
  r set bin "$(printf 'a\001\377b')"
  r rpush l a b c 1 2
  r sadd set x y z
  r sadd iset 1 2 3
  r zadd z 1.5 a 0.1 b -inf c
  r hset h f1 v1 f2 v2
  r set e v
  r pexpireat e 4102444800000
  for i in 1 2 3 4 5 6; do r xadd st "100-$i" f "v$i" g "w$i"; done
  r xgroup create st g1 0
  r xgroup create st g2 100-3
  r xreadgroup group g1 alice count 3 streams st '>'
  r xgroup createconsumer st g1 idle
  r xreadgroup group g1 idle2 count 1 streams st 0
  r xdel st 100-2 100-6
  r hset fe a 1 b 2
  r hpexpireat fe 4102444800000 fields 1 a
  r xadd ip IDMP p1 i1 '*' f 1
  r xadd ip IDMP p1 i2 '*' f 2
  r xadd ip IDMP p2 i1 '*' f 3
  r xcfgset ip IDMP-DURATION 600 IDMP-MAXSIZE 50
  r xadd ip IDMP p1 i3 '*' f 4
  r xadd ip IDMP p1 i3 '*' f 4
  redis-cli -p $port save >/dev/null
  head=$(head -c 9 "$dir/dump.rdb")
  case "$head" in REDIS*) rv=${head:5:4} ;; VALKEY*) rv=${head:6:3} ;; esac
  rv=$((10#$rv))
  cp "$dir/dump.rdb" "$here/$v-rdb$rv.rdb"
  echo "$v: RDB $rv, $(stat -c %s "$dir/dump.rdb") bytes"
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
done
