#!/usr/bin/env bash
# Gateway vs PostGraphile 4, side by side on one seeded PostgreSQL database (issue 13, item 6).
#
#   cargo build --release && npm ci --prefix benches/vs-postgraphile && benches/vs-postgraphile/run.sh
#
# What it does: drops and re-creates the database $DB on $PG, seeds it with the gateway's seeder
# (1,000 users, 5,000 posts, seed 42), starts PostGraphile 4.14.1 (this folder's package-lock.json) and
# the release gateway (one instance, no Redis) on it, checks that both answer the three anonymous
# queries in queries/ with the same data, then for each query runs wrk (POST application/json, the
# same body shape for both servers) in alternating rounds: gateway, PostGraphile, gateway, ... It
# does that with the gateway's default configuration (response cache on), measures the signed-in
# contract operations HomeFeed and PostPage on the gateway alone, and repeats the anonymous rounds
# with the gateway restarted with RESPONSE_CACHE_TTL_MS=0 (cache off). Prints Markdown tables.
#
# Per round it also reads: the gateway's `ecer_db_statements_total` (/metrics; it includes the
# background request-log writer), the CPU time (utime+stime, /proc/<pid>/stat) of the server under
# load, and the CPU time of the PostgreSQL backends connected to $DB. PostGraphile's transactions per
# request come from pg_stat_database after a short one-connection run (stats flushed by waiting).
#
# Environment (defaults): ROUND_SECS=15 ROUNDS=3 WARMUP_SECS=5 CONNS=50 THREADS=2
#   PHASES="cache-on signed-in cache-off" (signed-in also runs with the entity cache off)
#   PG=postgres://postgres@127.0.0.1:5432  DB=bench_vs_pg (dropped at exit unless KEEP_DB=1)
#   BIN=target/release/ecer-gateway  OUT=/tmp/vs-postgraphile-<time> (raw wrk output, results.tsv)
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; psql, createdb, dropdb), wrk
# (apt-get install wrk), curl, python3, node. About 13 minutes with the defaults.
# Results: docs/BENCHMARKS.md, "Gateway vs PostGraphile (issue 13)".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE/../.."

ROUND_SECS="${ROUND_SECS:-15}"
ROUNDS="${ROUNDS:-3}"
WARMUP_SECS="${WARMUP_SECS:-5}"
CONNS="${CONNS:-50}"
THREADS="${THREADS:-2}"
PHASES="${PHASES:-cache-on signed-in cache-off}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB="${DB:-bench_vs_pg}"
BIN="${BIN:-target/release/ecer-gateway}"
OUT="${OUT:-/tmp/vs-postgraphile-$(date +%Y%m%d-%H%M%S)}"
GW_ADDR=127.0.0.1:18741
PGL_PORT=18742
GW_URL="http://$GW_ADDR/graphql"
PGL_URL="http://127.0.0.1:$PGL_PORT/graphql"
POSTGRAPHILE="$HERE/node_modules/.bin/postgraphile"

need() { command -v "$1" >/dev/null || { echo "needs $1${2:+ ($2)}" >&2; exit 1; }; }
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x "$POSTGRAPHILE" ] || { echo "install first: npm ci --prefix benches/vs-postgraphile" >&2; exit 1; }
need wrk "apt-get install wrk"; need curl; need python3; need node; need psql; need createdb; need dropdb

mkdir -p "$OUT"
WORK="$(mktemp -d)"
GW_PID=""
PGL_PID=""
stop() { # stop <pid>: TERM, wait up to 10 s, then KILL
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$GW_PID"
  stop "$PGL_PID"
  if [ "${KEEP_DB:-0}" != 1 ]; then dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export PGHOST=127.0.0.1 PGUSER=postgres
DBURL="$PG/$DB"
# Both servers talk to PostgreSQL in plain text over loopback: PostGraphile's `pg` client does unless
# asked for TLS, while sqlx prefers TLS when the server offers it (Debian's does, with its snake-oil
# certificate), which cost the gateway about 7% of its CPU in encryption and copies.
GW_DBURL="$DBURL?sslmode=disable"
CLK_TCK="$(getconf CLK_TCK)"

# --- 1. a fresh database, seeded by the gateway ---
dropdb --if-exists --force "$DB"
createdb "$DB"
DATABASE_URL="$DBURL" MEDIA_DIR="$WORK/media" SEAL_KEY_FILE="$WORK/seal.key" RUST_LOG=warn \
  "$BIN" seed --users 1000 --posts 5000 --seed 42 | tail -1
sql() { psql -At -d "$DB" -c "$1"; }
# The board with the most live posts, and the post with the most top-level comments.
SLUG="$(sql "SELECT b.slug FROM boards b JOIN posts p ON p.board_id = b.id AND p.deleted_at IS NULL
             GROUP BY b.id, b.slug ORDER BY count(*) DESC, b.id LIMIT 1")"
POST_ID="$(sql "SELECT p.id FROM posts p JOIN comments c ON c.post_id = p.id AND c.parent_id IS NULL
                WHERE p.deleted_at IS NULL GROUP BY p.id ORDER BY count(*) DESC, p.id DESC LIMIT 1")"
POST_GID="$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(("Post:"+sys.argv[1]).encode()).rstrip(b"=").decode())' "$POST_ID")"
echo "board: $SLUG ($(sql "SELECT count(*) FROM posts p JOIN boards b ON b.id = p.board_id WHERE b.slug = '$SLUG'") posts); post: $POST_ID ($(sql "SELECT count(*) FROM comments WHERE post_id = $POST_ID AND parent_id IS NULL") top-level comments)"

# --- request bodies: {"query", "variables"} for both servers ---
body() { # body <graphql file> <variables json> <out> [operationName]
  python3 - "$1" "$2" "$3" "${4:-}" <<'PY'
import json, sys
q = open(sys.argv[1]).read()
b = {"query": q, "variables": json.loads(sys.argv[2])}
if sys.argv[4]:
    b["operationName"] = sys.argv[4]
open(sys.argv[3], "w").write(json.dumps(b))
PY
}
QUERIES="feed board post"
for q in $QUERIES; do
  case "$q" in
    feed) gv='{}'; pv='{}' ;;
    board) gv="{\"slug\":\"$SLUG\"}"; pv="$gv" ;;
    post) gv="{\"id\":\"$POST_GID\"}"; pv="{\"id\":\"$POST_ID\"}" ;;
  esac
  body "$HERE/queries/gateway-$q.graphql" "$gv" "$WORK/gateway-$q.json"
  body "$HERE/queries/postgraphile-$q.graphql" "$pv" "$WORK/postgraphile-$q.json"
done
body frontend-contract/operations/HomeFeed.graphql '{"first":20,"orderBy":"LATEST","commentsFirst":3}' \
  "$WORK/signed-HomeFeed.json" HomeFeed
body frontend-contract/operations/PostPage.graphql "{\"id\":\"$POST_GID\",\"commentsFirst\":20,\"repliesFirst\":3}" \
  "$WORK/signed-PostPage.json" PostPage

# --- 2. the servers ---
wait_up() { # wait_up <what> <pid> <command...>: until the command succeeds (30 s at most)
  local what="$1" pid="$2"; shift 2
  for _ in $(seq 150); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$what exited; its log:" >&2; cat "$OUT/$what.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$what did not come up" >&2; exit 1
}
NODE_ENV=production "$POSTGRAPHILE" -c "$DBURL" --schema public --disable-graphiql --disable-query-log \
  --host 127.0.0.1 -p "$PGL_PORT" >"$OUT/postgraphile.log" 2>&1 &
PGL_PID=$!
wait_up postgraphile "$PGL_PID" curl -sf -X POST -H 'Content-Type: application/json' -d '{"query":"{__typename}"}' "$PGL_URL"

start_gateway() { # start_gateway <label> [KEY=VALUE...]
  local label="$1"; shift
  env DATABASE_URL="$GW_DBURL" MEDIA_DIR="$WORK/media" SEAL_KEY_FILE="$WORK/seal.key" RUST_LOG=warn \
    RATE_LIMIT_REQUESTS_PER_MINUTE=0 LISTEN_ADDR="$GW_ADDR" "$@" "$BIN" >"$OUT/gateway-$label.log" 2>&1 &
  GW_PID=$!
  wait_up "gateway-$label" "$GW_PID" curl -sf "http://$GW_ADDR/healthz"
}

# Both servers must return the same data: compare the leaves of the two answers in order (gateway
# ids are base64url("Post:42"), PostGraphile's are "42"; PostGraphile returns bigint as strings).
check() { # check <query>
  curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/gateway-$1.json" "$GW_URL" >"$WORK/a.json"
  curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/postgraphile-$1.json" "$PGL_URL" >"$WORK/b.json"
  python3 - "$1" "$WORK/a.json" "$WORK/b.json" <<'PY'
import base64, json, sys
def leaves(v, key=None, out=None):
    out = [] if out is None else out
    if isinstance(v, dict):
        for k, x in v.items():
            leaves(x, k, out)
    elif isinstance(v, list):
        for x in v:
            leaves(x, key, out)
    else:
        if key == "id" and isinstance(v, str) and not v.isdigit():
            v = base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).decode().split(":", 1)[1]
        out.append(str(v))
    return out
a, b = (json.load(open(p)) for p in sys.argv[2:4])
for name, r in (("gateway", a), ("postgraphile", b)):
    if r.get("errors") or not r.get("data") or None in r["data"].values():
        sys.exit(f"{sys.argv[1]}: {name} answered {json.dumps(r)[:500]}")
la, lb = leaves(a["data"]), leaves(b["data"])
if la != lb:
    sys.exit(f"{sys.argv[1]}: answers differ\n gateway      {la[:12]}\n postgraphile {lb[:12]}")
ids = sum(1 for x in la)
print(f"check {sys.argv[1]}: same {ids} values from both; bytes gateway {len(json.dumps(a, ensure_ascii=False).encode())}, postgraphile {len(json.dumps(b, ensure_ascii=False).encode())}")
PY
}

# --- measurement ---
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
db_snapshot() { # "pid ticks" of every client backend on $DB
  local p
  for p in $(psql -At -d postgres -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND backend_type = 'client backend'"); do
    [ -r "/proc/$p/stat" ] && echo "$p $(ticks "$p" 2>/dev/null || echo 0)"
  done
  true
}
db_delta() { awk 'NR == FNR { b[$1] = $2; next } { d += $2 - ($1 in b ? b[$1] : 0) } END { print d + 0 }' "$1" "$2"; }
statements() { curl -sf "http://$GW_ADDR/metrics" | awk '$1 == "ecer_db_statements_total" { print $2 }'; }
xacts() { psql -At -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$DB'"; }

RESULTS="$OUT/results.tsv"
printf 'phase\tquery\tserver\tround\trequests\tsecs\trps\tp50_ms\tp99_ms\tnon2xx\tsock_err\tstatements\tserver_cpu_s\tdb_cpu_s\n' >"$RESULTS"

wrk_run() { # wrk_run <secs> <url> <body> <token> <raw out>
  BODY_FILE="$3" TOKEN="$4" timeout $(($1 + 60)) \
    wrk -t"$THREADS" -c"$CONNS" -d"$1s" --timeout 10s --latency -s "$HERE/bench.lua" "$2" >"$5"
}
round() { # round <phase> <query> <server gateway|postgraphile> <round> <body> [token]
  local phase="$1" q="$2" server="$3" r="$4" bodyf="$5" token="${6:-}" url pid s0=0 s1=0 c0 c1 raw
  if [ "$server" = gateway ]; then url="$GW_URL"; pid="$GW_PID"; else url="$PGL_URL"; pid="$PGL_PID"; fi
  raw="$OUT/wrk-$phase-$q-$server-$r.txt"
  [ "$server" = gateway ] && s0="$(statements)"
  c0="$(ticks "$pid")"; db_snapshot >"$WORK/db0"
  wrk_run "$ROUND_SECS" "$url" "$bodyf" "$token" "$raw"
  c1="$(ticks "$pid")"; db_snapshot >"$WORK/db1"
  [ "$server" = gateway ] && s1="$(statements)"
  read -r _ reqs dur p50 p99 non2xx sockerr < <(grep '^RESULT ' "$raw")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$q" "$server" "$r" "$reqs" \
    "$(awk -v d="$dur" 'BEGIN { printf "%.3f", d / 1e6 }')" \
    "$(awk -v n="$reqs" -v d="$dur" 'BEGIN { printf "%.1f", n / (d / 1e6) }')" \
    "$(awk -v x="$p50" 'BEGIN { printf "%.2f", x / 1000 }')" "$(awk -v x="$p99" 'BEGIN { printf "%.2f", x / 1000 }')" \
    "$non2xx" "$sockerr" "$([ "$server" = gateway ] && echo $((s1 - s0)) || echo '')" \
    "$(awk -v t=$((c1 - c0)) -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')" \
    "$(awk -v t="$(db_delta "$WORK/db0" "$WORK/db1")" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')" \
    | tee -a "$RESULTS" | awk -F'\t' '{ printf "  %-9s %-8s %-12s round %s: %7s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  errors %s\n", $1, $2, $3, $4, $7, $8, $9, $10, $11 }'
}
warm() { wrk_run "$WARMUP_SECS" "$1" "$2" "${3:-}" /dev/null; }

anonymous_phase() { # anonymous_phase <phase label>
  local q r
  for q in $QUERIES; do
    check "$q"
    warm "$GW_URL" "$WORK/gateway-$q.json"
    warm "$PGL_URL" "$WORK/postgraphile-$q.json"
    for r in $(seq "$ROUNDS"); do
      round "$1" "$q" gateway "$r" "$WORK/gateway-$q.json"
      round "$1" "$q" postgraphile "$r" "$WORK/postgraphile-$q.json"
    done
  done
}

has() { [[ " $PHASES " == *" $1 "* ]]; }

# --- 3. default configuration (response cache on) ---
echo "== gateway default configuration (response cache on, RESPONSE_CACHE_TTL_MS=1000)"
start_gateway cache-on
if has cache-on; then anonymous_phase cache-on; fi

# --- 4. signed-in contract operations, gateway alone (a seeded member; never in the response cache) ---
signed_in_phase() { # signed_in_phase <phase label>
  local op r token
  token="$(curl -sf -X POST -H 'Content-Type: application/json' "$GW_URL" \
    -d '{"query":"mutation($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) { token } }","variables":{"phone":"+8613900000001","password":"ecer-demo-password"}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["login"]["token"])')"
  for op in HomeFeed PostPage; do
    curl -sf -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
      --data-binary "@$WORK/signed-$op.json" "$GW_URL" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r.get("errors") or not r.get("data"): sys.exit("signed-in " + sys.argv[1] + ": " + json.dumps(r)[:500])' "$op"
    warm "$GW_URL" "$WORK/signed-$op.json" "$token"
    for r in $(seq "$ROUNDS"); do round "$1" "$op" gateway "$r" "$WORK/signed-$op.json" "$token"; done
  done
}
if has signed-in; then
  echo "== gateway signed in (frontend-contract HomeFeed and PostPage; entity cache on, the default)"
  signed_in_phase signed-in
  stop "$GW_PID"; GW_PID=""
  echo "== gateway signed in with ENTITY_CACHE_TTL_MS=0 (entity cache off)"
  start_gateway no-entity-cache ENTITY_CACHE_TTL_MS=0
  signed_in_phase signed-in-no-entity-cache
fi

# --- 5. response cache off ---
stop "$GW_PID"; GW_PID=""
if has cache-off; then
  # PostGraphile's PostgreSQL transactions per request, with the gateway stopped (its background
  # jobs would count too) and waiting out PostgreSQL's statistics flush (up to 10 s after a backend
  # idles).
  echo "== PostGraphile transactions per request (one connection, gateway stopped)"
  sleep 11; x0="$(xacts)"
  for q in $QUERIES; do
    BODY_FILE="$WORK/postgraphile-$q.json" timeout 30 wrk -t1 -c1 -d2s -s "$HERE/bench.lua" "$PGL_URL" >"$WORK/x.txt"
    sleep 11; x1="$(xacts)"
    n="$(awk '/^RESULT / { print $2 }' "$WORK/x.txt")"
    printf 'xacts\t%s\tpostgraphile\t1\t%s\t\t\t\t\t\t\t%s\t\t\n' "$q" "$n" "$((x1 - x0))" >>"$RESULTS"
    echo "  postgraphile $q: $((x1 - x0)) transactions for $n requests"
    x0="$x1"
  done

  echo "== gateway with RESPONSE_CACHE_TTL_MS=0 (cache off)"
  start_gateway cache-off RESPONSE_CACHE_TTL_MS=0
  anonymous_phase cache-off
fi

# --- 6. tables ---
python3 - "$RESULTS" "$ROUNDS" "$ROUND_SECS" "$CONNS" <<'PY' | tee "$OUT/tables.md"
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rounds, secs, conns = sys.argv[2:5]
def sel(phase, q, server):
    return [r for r in rows if r["phase"] == phase and r["query"] == q and r["server"] == server]
med = lambda rs, k: st.median(float(r[k]) for r in rs)
tot = lambda rs, k: sum(float(r[k] or 0) for r in rs)
def errs(rs):
    return int(tot(rs, "non2xx") + tot(rs, "sock_err"))
names = {"feed": "(a) home feed", "board": "(b) board page", "post": "(c) post page"}
print(f"Anonymous queries, {conns} connections, median of {rounds} alternating rounds of {secs} s:\n")
print("| query | gateway | gateway req/s | PostGraphile req/s | **gateway / PostGraphile** | gateway p50 ms | PostGraphile p50 ms | gateway p99 ms | PostGraphile p99 ms | **PostGraphile p99 / gateway p99** | errors gw / PG |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for q in ("feed", "board", "post"):
    for phase, label in (("cache-on", "cache on (default)"), ("cache-off", "cache off")):
        g, p = sel(phase, q, "gateway"), sel(phase, q, "postgraphile")
        if not g or not p:
            continue
        print(f"| {names[q]} | {label} | {med(g,'rps'):,.0f} | {med(p,'rps'):,.0f} | **{med(g,'rps')/med(p,'rps'):.2f}** | "
              f"{med(g,'p50_ms'):.2f} | {med(p,'p50_ms'):.2f} | {med(g,'p99_ms'):.2f} | {med(p,'p99_ms'):.2f} | "
              f"**{med(p,'p99_ms')/med(g,'p99_ms'):.2f}** | {errs(g)} / {errs(p)} |")
print(f"\nSigned in (gateway alone, frontend-contract operations), {conns} connections, median of {rounds} rounds of {secs} s:\n")
print("| operation | gateway | req/s | p50 ms | p99 ms | SQL statements/request | gateway CPU µs/request | PostgreSQL CPU µs/request | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for op in ("HomeFeed", "PostPage"):
  for phase, label in (("signed-in", "entity cache on (default)"), ("signed-in-no-entity-cache", "entity cache off")):
    g = sel(phase, op, "gateway")
    if g:
        n = tot(g, "requests")
        print(f"| {op} | {label} | {med(g,'rps'):,.0f} | {med(g,'p50_ms'):.2f} | {med(g,'p99_ms'):.2f} | {tot(g,'statements')/n:.2f} | "
              f"{tot(g,'server_cpu_s')/n*1e6:,.0f} | {tot(g,'db_cpu_s')/n*1e6:,.0f} | {errs(g)} |")
print("\nCost per anonymous request (all rounds summed; statements from the gateway's /metrics, which also counts")
print("its background request-log writes; PostGraphile's as PostgreSQL transactions in a one-connection run):\n")
print("| query | server | SQL statements/request | server CPU µs/request | PostgreSQL backend CPU µs/request | server + PostgreSQL CPU µs/request |")
print("|---|---|---:|---:|---:|---:|")
for q in ("feed", "board", "post"):
    for phase, server, label in (("cache-on", "gateway", "gateway, cache on"), ("cache-off", "gateway", "gateway, cache off"),
                                 ("cache-on", "postgraphile", "PostGraphile")):
        rs = sel(phase, q, server)
        if server == "postgraphile":
            rs = rs + sel("cache-off", q, server)
        if not rs:
            continue
        n = tot(rs, "requests")
        if server == "gateway":
            stm = f"{tot(rs,'statements')/n:.2f}"
        else:
            x = sel("xacts", q, server)
            stm = f"{float(x[0]['statements'])/float(x[0]['requests']):.2f}" if x else "n/a"
        s, d = tot(rs, "server_cpu_s") / n * 1e6, tot(rs, "db_cpu_s") / n * 1e6
        print(f"| {names[q]} | {label} | {stm} | {s:,.0f} | {d:,.0f} | {s+d:,.0f} |")
PY
echo "raw wrk output and results.tsv: $OUT"
