#!/usr/bin/env bash
# Compare ringkv with Redis and etcd on this machine, on 127.0.0.1 only.
#
#   bench/compare.sh
#
# Installs what is missing (Debian packages), builds ringkv (release),
# starts a 3-node ringkv cluster (N=3, R=2, W=2, fjall), one redis-server
# (no persistence) and a 3-member etcd cluster, then runs:
#   - the same redis-benchmark (SET/GET, 100-byte values, 50 clients,
#     100,000 random keys) against redis-server and ringkv's Redis port,
#     without and with -P 16;
#   - `ringkv bench` YCSB A and C (after a load) against ringkv and etcd:
#     closed loop (peak throughput), then open loop at half the slower
#     system's peak (latency at the same offered load for both).
# Prints one table. Stops everything it started on any exit.
#
# Environment: REQUESTS (redis-benchmark -n, 50000), KEYSPACE (its -r,
# 100000 random keys; 0: redis-benchmark's default of one key), RECORDS (10000),
# DURATION (each bench run, 10s), CONCURRENCY (closed-loop bench runs, 32),
# OPEN_CONCURRENCY (open-loop runs, 64), KEEP=1 keeps the temporary
# directory (configs, data, logs), SECURITY (tls: inter-node mutual TLS,
# the default users get; plain: `insecure = true`, to state what TLS costs).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-50000}
KEYSPACE=${KEYSPACE:-100000}
RECORDS=${RECORDS:-10000}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
OPEN_CONCURRENCY=${OPEN_CONCURRENCY:-64}
SECURITY=${SECURITY:-tls}
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

say() { echo "compare.sh: $*" >&2; }

# --- install and build ------------------------------------------------------

install_missing() {
  local -A package_of=(
    [redis-server]=redis-server [redis-benchmark]=redis-tools [redis-cli]=redis-tools
    [etcd]=etcd-server [etcdctl]=etcd-client [jq]=jq
  )
  local -A missing=()
  local bin
  for bin in "${!package_of[@]}"; do
    command -v "$bin" >/dev/null || missing[${package_of[$bin]}]=1
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  say "installing ${!missing[*]}"
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${!missing[@]}"
}

install_missing
cargo build --release -p ringkv
RINGKV="${CARGO_TARGET_DIR:-target}/release/ringkv"

# --- processes, ports, readiness -------------------------------------------

WORK=$(mktemp -d -t ringkv-compare-XXXXXX)
PIDS=()

# Stop in reverse start order, one at a time: etcd members stopped all at
# once can hang in an election that no longer has a quorum.
cleanup() {
  local k pid
  for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do
    pid=${PIDS[k]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "process $pid did not stop within 5 s of SIGTERM: killed"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ ${KEEP:-0} == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LOG COMMAND...: run in the background, logging to LOG.
start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  PIDS+=($!)
  disown # no job notices ("Killed") from bash
}

declare -A PICKED=()
# pick_port VAR: a free high port (nothing accepts on it), never the same twice.
pick_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    [[ -n ${PICKED[$port]:-} ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    PICKED[$port]=1
    printf -v "$1" '%s' "$port"
    return
  done
}

# wait_ready NAME LOG PID COMMAND...: until COMMAND succeeds (30 s), or fail
# with the end of LOG when PID exits or time runs out.
wait_ready() {
  local name=$1 log=$2 pid=$3
  shift 3
  for _ in $(seq 150); do
    "$@" >/dev/null 2>&1 && return
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited while starting; end of $log:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  say "$name not ready within 30 s; end of $log:"
  tail -n 20 "$log" >&2
  exit 1
}

# --- ringkv: 3 nodes, N=3 R=2 W=2, fjall --------------------------------------

RINGKV_HTTP=() RINGKV_PEER=() RINGKV_RESP=() RINGKV_PIDS=()
for i in 1 2 3; do
  pick_port p; RINGKV_HTTP+=("$p")
  pick_port p; RINGKV_PEER+=("$p")
  pick_port p; RINGKV_RESP+=("$p")
done
# Security as users get it by default: a CA and node certificates.
case "$SECURITY" in
  tls | plain) ;;
  *) say "SECURITY must be tls or plain, not $SECURITY"; exit 2 ;;
esac
if [[ $SECURITY == tls ]]; then
  "$RINGKV" cert create-ca --certs-dir "$WORK/certs" >/dev/null
  for i in 1 2 3; do
    "$RINGKV" cert create-node --certs-dir "$WORK/certs" --id "n$i" --host 127.0.0.1 >/dev/null
  done
fi
for i in 1 2 3; do
  {
    printf 'cluster = "compare"\nnode_id = "n%s"\ndata_dir = "%s/n%s"\n\n' "$i" "$WORK" "$i"
    [[ $SECURITY == plain ]] && printf 'insecure = true\n\n'
    [[ $SECURITY == tls ]] &&
      printf '[tls]\nca = "certs/ca.pem"\ncert = "certs/n%s.pem"\nkey = "certs/n%s.key"\n\n' "$i" "$i"
    printf '[storage]\nengine = "fjall"\n\n[replication]\nn = 3\nr = 2\nw = 2\n\n'
    for j in 1 2 3; do
      printf '[[nodes]]\nid = "n%s"\naddr = "127.0.0.1:%s"\nhttp = "127.0.0.1:%s"\nresp = "127.0.0.1:%s"\n\n' \
        "$j" "${RINGKV_PEER[j - 1]}" "${RINGKV_HTTP[j - 1]}" "${RINGKV_RESP[j - 1]}"
    done
  } >"$WORK/n$i.toml"
  start "$WORK/n$i.log" "$RINGKV" node --config "$WORK/n$i.toml"
  RINGKV_PIDS+=("${PIDS[-1]}")
done
for i in 1 2 3; do
  wait_ready "ringkv n$i" "$WORK/n$i.log" "${RINGKV_PIDS[i - 1]}" \
    "$RINGKV" status --node "127.0.0.1:${RINGKV_HTTP[i - 1]}"
  wait_ready "ringkv n$i (Redis port)" "$WORK/n$i.log" "${RINGKV_PIDS[i - 1]}" \
    redis-cli -p "${RINGKV_RESP[i - 1]}" ping
done
RINGKV_NODES=$(printf '127.0.0.1:%s,' "${RINGKV_HTTP[@]}")
RINGKV_NODES=${RINGKV_NODES%,}

# --- redis-server -----------------------------------------------------------

pick_port REDIS_PORT
start "$WORK/redis.log" \
  redis-server --save '' --appendonly no --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK"
wait_ready redis-server "$WORK/redis.log" "${PIDS[-1]}" redis-cli -p "$REDIS_PORT" ping

# --- etcd: 3 members ----------------------------------------------------------

ETCD_CLIENT=() ETCD_PEER=() ETCD_PIDS=()
for i in 1 2 3; do
  pick_port p; ETCD_CLIENT+=("$p")
  pick_port p; ETCD_PEER+=("$p")
done
ETCD_CLUSTER=$(for i in 1 2 3; do printf 'e%s=http://127.0.0.1:%s,' "$i" "${ETCD_PEER[i - 1]}"; done)
ETCD_CLUSTER=${ETCD_CLUSTER%,}
for i in 1 2 3; do
  start "$WORK/etcd$i.log" etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[i - 1]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[i - 1]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[i - 1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[i - 1]}" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-token ringkv-compare \
    --initial-cluster-state new
  ETCD_PIDS+=("${PIDS[-1]}")
done
ETCD_NODES=$(printf '127.0.0.1:%s,' "${ETCD_CLIENT[@]}")
ETCD_NODES=${ETCD_NODES%,}
for i in 1 2 3; do
  wait_ready "etcd e$i" "$WORK/etcd$i.log" "${ETCD_PIDS[i - 1]}" \
    env ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${ETCD_CLIENT[i - 1]}" endpoint health
done
say "all up: ringkv $RINGKV_NODES, redis 127.0.0.1:$REDIS_PORT, etcd $ETCD_NODES"

# --- measurements: RESULT[test|system] = "ops/s p99-ms" ----------------------

declare -A RESULT=() LISTED=()
TESTS=()

# add_test NAME: a row of the table, in the order first measured.
add_test() {
  [[ -n ${LISTED[$1]:-} ]] && return
  LISTED[$1]=1
  TESTS+=("$1")
}

# Random keys: without -r every request names one key, which ringkv's Redis
# port serializes per connection, and a hot-key test is not the question.
KEYS=()
[[ $KEYSPACE != 0 ]] && KEYS=(-r "$KEYSPACE")

# redis_benchmark SYSTEM PORT [FLAGS...]: FLAGS (-P 16) also name the rows.
redis_benchmark() {
  local system=$1 port=$2 label
  shift 2
  label=${*:+ $*}
  say "redis-benchmark against $system$label"
  while IFS=, read -r test rps _ _ _ _ p99 _; do
    [[ $test == test ]] && continue
    add_test "$test$label"
    RESULT["$test$label|$system"]="$rps $p99"
  done < <(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 100 -c 50 -n "$REQUESTS" \
    "${KEYS[@]}" -q --csv "$@" | tr -d '"')
}

# ycsb SYSTEM TEST WORKLOAD [bench flags...]: one row per operation type;
# TOTAL[test|system] = all operations per second.
declare -A TOTAL=()
ycsb() {
  local system=$1 test=$2 workload=$3 nodes=$RINGKV_NODES json
  shift 3
  [[ $system == etcd ]] && nodes=$ETCD_NODES
  say "ringkv bench: $test against $system"
  json=$("$RINGKV" bench --target "$system" --nodes "$nodes" --workload "$workload" \
    --records "$RECORDS" --json "$@")
  if [[ $(jq '.errors + .unsent' <<<"$json") != 0 ]]; then
    say "$test on $system: $(jq -c '{errors, unsent, error_messages}' <<<"$json")"
  fi
  TOTAL["$test|$system"]=$(jq .ops_per_s <<<"$json")
  while read -r op ops p99; do
    add_test "$test $op"
    RESULT["$test $op|$system"]="$ops $p99"
  done < <(jq -r '.operations[] | "\(.op) \(.ops_per_s) \(.latency_us.p99 / 1000)"' <<<"$json")
}

redis_benchmark redis "$REDIS_PORT"
redis_benchmark ringkv "${RINGKV_RESP[0]}"
redis_benchmark redis "$REDIS_PORT" -P 16
redis_benchmark ringkv "${RINGKV_RESP[0]}" -P 16

for system in ringkv etcd; do
  ycsb "$system" "YCSB load" load --concurrency "$CONCURRENCY"
  for workload in A C; do
    ycsb "$system" "YCSB $workload peak" "${workload,}" --duration "$DURATION" \
      --concurrency "$CONCURRENCY"
  done
done
# Then open loop at half the slower system's peak, so both are measured at
# the same offered load, one that both can carry.
for workload in A C; do
  rate=$(awk -v a="${TOTAL["YCSB $workload peak|ringkv"]}" -v b="${TOTAL["YCSB $workload peak|etcd"]}" \
    'BEGIN { printf "%d", (a < b ? a : b) / 2 }')
  for system in ringkv etcd; do
    ycsb "$system" "YCSB $workload @${rate}/s" "${workload,}" \
      --duration "$DURATION" --rate "$rate" --concurrency "$OPEN_CONCURRENCY"
  done
done

# --- the table -----------------------------------------------------------------

echo
echo "ringkv (3 nodes, N=3 R=2 W=2, fjall, inter-node security: $SECURITY) vs redis-server (1, no persistence) and etcd (3 members), 127.0.0.1, $(nproc) cores"
echo "redis-benchmark -t set,get -d 100 -c 50 -n $REQUESTS ${KEYS[*]}; ringkv bench --records $RECORDS, $DURATION per run, concurrency $CONCURRENCY (open loop $OPEN_CONCURRENCY)"
printf '%-26s %-6s %12s %10s %12s %10s %12s %10s\n' \
  test vs "ops/s" "p99 ms" "ringkv ops/s" "p99 ms" "ops/s ratio" "p99 ratio"
for test in "${TESTS[@]}"; do
  other=redis; [[ $test == YCSB* ]] && other=etcd
  read -r o_ops o_p99 <<<"${RESULT["$test|$other"]:-- -}"
  read -r r_ops r_p99 <<<"${RESULT["$test|ringkv"]:-- -}"
  awk -v t="$test" -v s="$other" -v oo="$o_ops" -v op="$o_p99" -v ro="$r_ops" -v rp="$r_p99" '
    function ratio(a, b) { return (b + 0 > 0 && a != "-") ? sprintf("%.2f", a / b) : "-" }
    BEGIN { printf "%-26s %-6s %12.0f %10.2f %12.0f %10.2f %12s %10s\n",
            t, s, oo, op, ro, rp, ratio(ro, oo), ratio(rp, op) }'
done
echo "ratios are ringkv / other: ops/s above 1 and p99 below 1 favour ringkv."
echo "etcd fsyncs its log before answering; ringkv writes to the OS at once and fsyncs every 100 ms; redis-server keeps nothing on disk."
