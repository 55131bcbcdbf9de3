#!/usr/bin/env bash
# Memory under sustained overload: a fresh local 3-node cluster (`ringkv
# dev`, default [limits]) driven far past what it can serve for DURATION
# seconds — redis-benchmark pipelining SETs of 1 KiB values into node 1
# and `ringkv bench` running YCSB A over HTTP with thousands of requests in
# flight — while the resident memory (VmRSS) of each node process is
# sampled from /proc every INTERVAL seconds. Loopback only. A benchmark,
# not a test: it prints what it saw.
#
#   bench/overload.sh target/release/ringkv
#
# Prints one line per sample (seconds, RSS of n1 n2 n3 in MiB), then per
# node the first and last sample after the warm-up and their range, and
# what node 1 shed (its /status `load.shed`, nonzero entries). Flat memory
# means the bounded queues hold: without them the backlog of refused work
# would show up here. With STALL=1 (the default) node 3 is stopped
# (SIGSTOP, as a hung process or a long pause) for the whole run, so the
# other two keep sending to a peer that reads nothing — the bound on their
# outbound queues is all that stands between them and unbounded growth;
# it is continued (SIGCONT) at the end.
#
# Environment: DURATION (60), INTERVAL (5), WARMUP (15), RESP_CLIENTS
# (500), PIPELINE (32), HTTP_CONCURRENCY (2000), KEYS (10000: a fixed key
# space, so the stored data stops growing once every key is written),
# ENGINE (memory: the data in a map of at most KEYS entries, so the
# figures are the nodes' own memory; with `fjall` they include the LSM's
# memtables, block cache and file indexes, which grow with what was
# written), STALL (1), BASE (first port of three ranges, 27101: Redis
# BASE.., inter-node BASE+1000.., HTTP BASE+2000..).
set -euo pipefail
BIN=$1
DURATION=${DURATION:-60}
INTERVAL=${INTERVAL:-5}
WARMUP=${WARMUP:-15}
RESP_CLIENTS=${RESP_CLIENTS:-500}
PIPELINE=${PIPELINE:-32}
HTTP_CONCURRENCY=${HTTP_CONCURRENCY:-2000}
KEYS=${KEYS:-10000}
ENGINE=${ENGINE:-memory}
STALL=${STALL:-1}
BASE=${BASE:-27101}
HTTP=$((BASE + 2000))
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (Debian: redis-tools)" >&2; exit 1; }
DIR=$(mktemp -d)
"$BIN" dev --data-dir "$DIR" --engine "$ENGINE" --resp-base-port "$BASE" \
  --peer-base-port $((BASE + 1000)) --http-base-port "$HTTP" >"$DIR/dev.log" 2>&1 &
DEV=$!
LOADS=()
PIDS=()
cleanup() {
  for pid in "${LOADS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ "${#PIDS[@]}" -eq 3 ] && kill -CONT "${PIDS[2]}" 2>/dev/null || true
  kill -INT "$DEV" 2>/dev/null
  wait "$DEV" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 150); do grep -q "Ctrl-C" "$DIR/dev.log" && break; sleep 0.2; done
grep -q "Ctrl-C" "$DIR/dev.log" || { tail "$DIR/dev.log" >&2; exit 1; }
# The node processes are the dev command's children, in start order.
mapfile -t PIDS < <(ps -o pid= --ppid "$DEV" --sort=start_time | tr -d ' ')
[ "${#PIDS[@]}" -eq 3 ] || { echo "expected 3 node processes, found ${PIDS[*]}" >&2; exit 1; }

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
sample() { local line="$1"; for p in "${PIDS[@]}"; do line+=" $(rss_mib "$p")"; done; echo "$line"; }

echo "# $ENGINE engine, overload for ${DURATION}s on $KEYS keys: redis-benchmark -c $RESP_CLIENTS -P $PIPELINE" \
  "SET 1 KiB into n1, ringkv bench YCSB A --concurrency $HTTP_CONCURRENCY over HTTP"
echo "# seconds  rss_n1_MiB  rss_n2_MiB  rss_n3_MiB"
sample "before"
if [ "$STALL" = 1 ]; then kill -STOP "${PIDS[2]}"; echo "# n3 stopped (SIGSTOP)"; fi
timeout "$((DURATION + 5))" redis-benchmark -p "$BASE" -t set -d 1024 -c "$RESP_CLIENTS" \
  -P "$PIPELINE" -r "$KEYS" -n 2000000000 -q >"$DIR/redis-benchmark.log" 2>&1 &
LOADS+=($!)
"$BIN" bench --nodes "127.0.0.1:$HTTP" --workload a --records "$KEYS" --value-size 1024 \
  --concurrency "$HTTP_CONCURRENCY" --duration "${DURATION}s" >"$DIR/bench.log" 2>&1 &
LOADS+=($!)

SAMPLES="$DIR/samples"
: >"$SAMPLES"
for ((t = INTERVAL; t <= DURATION; t += INTERVAL)); do
  sleep "$INTERVAL"
  sample "$t" | tee -a "$SAMPLES"
done
for pid in "${LOADS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
LOADS=()
[ "$STALL" = 1 ] && kill -CONT "${PIDS[2]}"

echo "# per node after ${WARMUP}s of warm-up: first and last sample, lowest and highest:"
awk -v warmup="$WARMUP" '
  $1 >= warmup {
    for (i = 2; i <= 4; i++) {
      if (!seen) { first[i] = $i; low[i] = $i; high[i] = $i }
      last[i] = $i
      if ($i < low[i]) low[i] = $i
      if ($i > high[i]) high[i] = $i
    }
    seen = 1
  }
  END {
    for (i = 2; i <= 4; i++)
      printf "n%d: %.1f -> %.1f MiB, range %.1f..%.1f MiB\n", i - 1, first[i], last[i], low[i], high[i]
  }' "$SAMPLES"
echo "# what n1 shed (load.shed in /status, nonzero):"
curl -s "http://127.0.0.1:$HTTP/status" |
  python3 -c 'import json,sys; s=json.load(sys.stdin).get("load",{}).get("shed",{}); print("\n".join(f"{q}.{c}: {n}" for q,cs in s.items() for c,n in cs.items() if n) or "nothing")'
echo "# ringkv bench (HTTP), its last progress line and its errors:"
grep -E "ops/s now" "$DIR/bench.log" | tail -1 || true
grep -i "overloaded" "$DIR/bench.log" | head -4 || true
