#!/usr/bin/env bash
# Throughput and node CPU per request of redis-benchmark SET and GET against
# a fresh local 3-node cluster, for before/after comparisons of one binary
# against another. Loopback only.
#
#   bench/put-cpu.sh target/release/ringkv LABEL
#
# Prints, per test, requests per second and the CPU time of the three node
# processes (user + system, from /proc) divided by the request count. To see
# where that time goes, run it under `perf record -e cpu-clock -a`.
# Environment: N (requests, 100000), BASE (first port of three ranges,
# 26101: Redis ports BASE.., inter-node BASE+1000.., HTTP BASE+2000..).
set -euo pipefail
BIN=$1
LABEL=$2
N=${N:-100000}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (Debian: redis-tools)" >&2; exit 1; }
. "$(dirname "$0")/dev-cluster.sh"
pids=$(pgrep -f "node --config $DIR/")
cpu_ticks() {
  local total=0 fields
  for p in $pids; do
    read -r -a fields <"/proc/$p/stat"
    total=$((total + fields[13] + fields[14]))
  done
  echo "$total"
}
ticks=$(getconf CLK_TCK)
for test in set get; do
  before=$(cpu_ticks)
  line=$(redis-benchmark -p "$BASE" -t "$test" -d 100 -c 50 -n "$N" -r 1000000 -q 2>/dev/null |
    tr '\r' '\n' | grep -i "requests per second" | tail -1)
  after=$(cpu_ticks)
  rps=$(echo "$line" | sed -E 's/.*: ([0-9.]+) requests.*/\1/')
  echo "$LABEL $test: $rps requests/s, node CPU $(((after - before) * 1000000 / ticks / N)) µs per request"
done
