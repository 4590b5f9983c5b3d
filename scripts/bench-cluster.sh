#!/bin/bash
# The cluster benchmark of docs/benchmarks-log.md: one node, then two nodes with every message
# crossing, the same load on the same PostgreSQL; one JSON line per run on stdout.
# Needs a PostgreSQL and a Redis already running (loopback), and `npm run build`:
#   PG_URL=postgres://postgres@127.0.0.1:55432  PG_PID=<postmaster pid>
#   REDIS_URL=redis://127.0.0.1:56379  REDIS_PID=<redis-server pid>
#   scripts/bench-cluster.sh [loadgen options, e.g. --rate 2000]
# XMPPD_BENCH_MODULES=-mam runs without the archive. Databases benchone and benchcl are recreated.
set -u
cd "$(dirname "$0")/.."
: "${PG_URL:?}" "${PG_PID:?}" "${REDIS_URL:?}" "${REDIS_PID:?}"
export XMPPD_BENCH_MODULES=${XMPPD_BENCH_MODULES:-}
ARGS="--scenario msg --pairs 100 --duration 10 --window 10 $*"
WORK=$(mktemp -d /tmp/xmppd-bench-cluster-XXXX)
for d in benchone benchcl; do
  psql "$PG_URL/postgres" -qc "drop database if exists $d" -c "create database $d" >/dev/null
done
node_on() { # port data-dir database [node-id]
  local cluster=()
  [ -n "${4:-}" ] && cluster=(XMPPD_BENCH_REDIS_URL="$REDIS_URL" XMPPD_BENCH_NODE_ID="$4")
  env BENCH_PORT="$1" BENCH_DATA_DIR="$WORK/$2" XMPPD_BENCH_POSTGRES_URL="$PG_URL/$3" "${cluster[@]}" \
    node dist/scripts/bench-server.js > "$WORK/$2.log" 2>&1 &
}
node_on 5322 one benchone; ONE=$!
sleep 4
node dist/src/bench/loadgen.js --port 5322 --pid "$ONE,$PG_PID" $ARGS 2>/dev/null
kill $ONE; wait $ONE
node_on 5323 a benchcl a; A=$!
node_on 5324 b benchcl b; B=$!
sleep 5
node dist/src/bench/loadgen.js --ports 5323,5324 --cross 1.0 --pid "$A,$B,$REDIS_PID,$PG_PID" $ARGS 2>/dev/null
kill $A $B; wait $A $B
echo "logs in $WORK" >&2
