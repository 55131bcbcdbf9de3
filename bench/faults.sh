#!/usr/bin/env bash
# Fault benchmark (issue 12, "always writable"): availability and latency of
# a 5-node cluster under kernel-level faults. Speed goals live here, not in
# the tests (crates/ringkv/tests/kernel_faults.rs proves the behaviours).
#
#   bash bench/faults.sh [pause|isolate|partition|all] [SECONDS]
#
# From the repository root, as root (network namespaces, iptables). Builds
# target/release/ringkv and the load generator
# (crates/ringkv/examples/fault_bench.rs), then starts 5 nodes, each in its
# own network namespace on one bridge (crates/ringkv/tests/common/netns.rs),
# with the default settings (N=3, R=2, W=2), and runs a closed-loop client
# load (8 clients, HTTP) from the root namespace. Each scenario prints one
# line of figures:
#   pause      n1 SIGSTOPped for SECONDS (10); 50% R=2 reads / 50% W=2 writes
#              to n2..n5: p99, p99.9, max and failed requests started during
#              the fault. Goal: p99.9 <= 100 ms, max <= 500 ms, 0 failed writes.
#   isolate    the same with n1 cut off silently (iptables DROP of its packets, both directions).
#   partition  {n1,n2}|{n3,n4,n5} silent for SECONDS (60), W=1 writes through
#              the nodes of both sides; then the heal: the time until W=2/R=2
#              probes through every node (keys replicated on both sides, one
#              every 100 ms per node, 2 s limit; probing stops after 3 s
#              without a failure, or SECONDS+10 s) all succeed, and the share of
#              W=1 writes that succeeded on each side (worst preference list
#              named). Goals: <= 1 s; 100%.
#              Partitions DROP on INPUT only (a cut cable: senders back off);
#              DROP_OUTPUT_TOO=1 also DROPs on OUTPUT, which hides TCP backoff.
#   all        the three, with their default durations (default scenario).
# Needs iproute2 and iptables (scripts/test installs them). Namespaces are
# deleted on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-all}
target=${CARGO_TARGET_DIR:-target}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench/faults.sh needs root (network namespaces, iptables)" >&2
  exit 1
fi
for tool in ip iptables; do
  command -v "$tool" >/dev/null || { echo "bench/faults.sh needs $tool: apt-get install -y iproute2 iptables" >&2; exit 1; }
done

cargo build --release --locked -p ringkv --bin ringkv --example fault_bench >&2

"$target/release/examples/fault_bench" "$target/release/ringkv" "$scenario" "${@:2}" &
bench=$!
cleanup() {
  kill "$bench" 2>/dev/null || true
  wait "$bench" 2>/dev/null || true
  # Namespaces of a bench that was killed before it could delete them.
  for ns in $(ip netns list | awk '{print $1}' | grep "^rkv-${bench}x" || true); do
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM
wait "$bench"
