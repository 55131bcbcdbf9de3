# Sourced by the bench scripts: start a fresh `ringkv dev` cluster of
# "$BIN" in a temporary directory "$DIR" (Redis ports BASE.., inter-node
# BASE+1000.., HTTP BASE+2000..; BASE defaults to 26101), wait until it
# serves, and stop it and remove "$DIR" on exit. Exits 1 with the end of
# its log if it does not start.
BASE=${BASE:-26101}
DIR=$(mktemp -d)
"$BIN" dev --data-dir "$DIR" --resp-base-port "$BASE" \
  --peer-base-port $((BASE + 1000)) --http-base-port $((BASE + 2000)) >"$DIR/dev.log" 2>&1 &
DEV=$!
trap 'kill -INT $DEV 2>/dev/null; wait $DEV 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "Ctrl-C" "$DIR/dev.log" && break; sleep 0.2; done
grep -q "Ctrl-C" "$DIR/dev.log" || { tail "$DIR/dev.log" >&2; exit 1; }
