#!/usr/bin/env bash
# Duplicate siblings from hedged forwards of large writes: six concurrent
# blind 1 MiB PUTs of one `/kv` key, two through each of the three nodes of
# a fresh local cluster, five rounds; prints the siblings each round holds
# (6: no write was applied twice). Loopback only.
#
#   bench/duplicate-siblings.sh target/release/ringkv
#
# Environment: BASE (first port of three ranges, as in put-cpu.sh).
BIN=$1
. "$(dirname "$0")/dev-cluster.sh"
H=$((BASE+2000))
for i in 1 2 3 4 5 6; do head -c 1048000 /dev/urandom > $DIR/v$i; done
out=""
for r in 1 2 3 4 5; do 
  pids=(); for i in 1 2 3 4 5 6; do curl -s -o /dev/null -X PUT --data-binary @$DIR/v$i http://127.0.0.1:$((H + i % 3))/kv/big$r & pids+=($!); done; wait "${pids[@]}"
  sleep 1
  n=$(curl -s -H 'Accept: application/json' http://127.0.0.1:$H/kv/big$r | python3 -c "import json,sys; print(len(json.load(sys.stdin)['siblings']))")
  out="$out $n"
done
echo "siblings per round:$out"
