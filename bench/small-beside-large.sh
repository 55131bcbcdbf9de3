#!/usr/bin/env bash
# Small requests beside large ones (flow control per peer): a 4-client
# redis-benchmark SET/GET load of 100-byte values alone, then while 8
# `ringkv bench` writers load 400 values of 1 MiB (HTTP `/kv`, another
# keyspace), against a fresh local 3-node cluster. Loopback only.
#
#   bench/small-beside-large.sh target/release/ringkv
#
# Prints each test's requests/s, p50, p99 and max (ms), and the 1 MiB
# load's ops/s and p99. Alternate two binaries for a before/after: this
# machine's run-to-run noise is ±20%.
# Environment: BASE (first port of three ranges, as in put-cpu.sh).
BIN=$1
. "$(dirname "$0")/dev-cluster.sh"
NODES=127.0.0.1:$((BASE+2000)),127.0.0.1:$((BASE+2001)),127.0.0.1:$((BASE+2002))
small() { redis-benchmark -p $((BASE+${1:-0})) -t set,get -d 100 -c 4 -n ${2:-3000} -r 1000 --csv 2>/dev/null | tr -d '"' | awk -F, 'NR>1 {printf "  %s %s/s p50 %s p99 %s max %s ms\n", $1, $2, $5, $7, $8}'; }
echo "alone:"; small 0 3000
"$BIN" bench --nodes $NODES --workload load --records 400 --value-size 1048576 --concurrency 8 > $DIR/big.out 2>&1 &
BIG=$!
sleep 3
echo "during 1 MiB writes:"; small 0 1500; small 1 1500
wait $BIG; grep -E "^insert" $DIR/big.out | awk '{printf "  1 MiB load: %s ops/s, p99 %s ms\n", $3, $6}'
