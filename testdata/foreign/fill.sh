#!/bin/sh
# The fixture keyspace: every type, an expiry, bytes that are not UTF-8, a
# score that %g would round, a second database, a stream.
P="redis-cli -p $1"
$P set plain "hello world" >/dev/null
$P set session:1 "abc" EX 100000 >/dev/null
printf 'SET bin:1 "\\xff\\xfe\\x00raw"\n' | $P >/dev/null
$P rpush list:1 a b "c d" >/dev/null
$P sadd set:1 x y z >/dev/null
$P zadd zset:1 0.1 a 3.141592653589793 pi 1e-300 tiny >/dev/null
$P hset hash:1 f1 v1 f2 "v 2" >/dev/null
$P -n 2 set other:1 "in db 2" >/dev/null
$P xadd stream:1 1-1 f v >/dev/null
