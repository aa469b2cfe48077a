#!/usr/bin/env bash
# Steady-state soak: does the gateway's memory level off while it serves? Anonymous HomeFeed (the
# community's most common read) in back-to-back wrk rounds against a seeded database, with the request
# log on (the default), printing RSS and throughput after each round.
#
#   cargo build --release && benches/rss-soak.sh [rounds] [seconds per round]
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/soak benches/rss-soak.sh   (an empty database)
#   MODE=signed-in benches/rss-soak.sh 20 30   (the 10-minute soak of issue 13, as seeded member 1)
#
# Each round prints requests, req/s, RSS and the request-log rows the writer dropped so far
# (`ecer_activity_dropped_total`: its queue is bounded, so falling behind drops rows, never memory).
#
# Needs wrk (apt-get install wrk). Results: docs/BENCHMARKS.md, "Steady state".
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-6}"
SECS="${2:-30}"
BIN=target/release/ecer-gateway
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export DATABASE_URL="${DATABASE_URL:-sqlite://$WORK/soak.db?mode=rwc}"
export MEDIA_DIR="$WORK/media" SEAL_KEY_FILE="$WORK/seal.key" RUST_LOG=warn
export RATE_LIMIT_REQUESTS_PER_MINUTE=0 LISTEN_ADDR=127.0.0.1:18731
"$BIN" seed --users 1000 --posts 5000 >/dev/null
"$BIN" >"$WORK/log" 2>&1 &
PID=$!
until curl -sf "http://$LISTEN_ADDR/healthz" >/dev/null; do sleep 0.2; done
cat >"$WORK/feed.lua" <<'LUA'
local f = assert(io.open("frontend-contract/operations/HomeFeed.graphql", "r"))
local query = f:read("*a")
f:close()
local escaped = query:gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n")
wrk.method = "POST"
wrk.body = '{"query":"' .. escaped .. '","operationName":"HomeFeed","variables":{"first":20,"orderBy":"LATEST","commentsFirst":3}}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("SOAK_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
LUA
SOAK_TOKEN=""
if [ "${MODE:-anonymous}" = signed-in ]; then
  SOAK_TOKEN="$(curl -sf -X POST -H 'Content-Type: application/json' "http://$LISTEN_ADDR/graphql" \
    -d '{"query":"mutation($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) { token } }","variables":{"phone":"+8613900000001","password":"ecer-demo-password"}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["login"]["token"])')"
fi
export SOAK_TOKEN
dropped() { curl -sf "http://$LISTEN_ADDR/metrics" | awk '/^ecer_activity_dropped_total / {print $2}'; }
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
echo "mode ${MODE:-anonymous}; round  requests  req/s   RSS MiB (start $(rss))  request-log rows dropped"
for r in $(seq 1 "$ROUNDS"); do
  out="$(wrk -t2 -c50 -d"${SECS}s" -s "$WORK/feed.lua" "http://$LISTEN_ADDR/graphql")"
  reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  printf "%5s  %8s  %8s  %5s  %s\n" "$r" "$reqs" "$rps" "$(rss)" "$(dropped)"
done
