-- wrk script of benches/vs-postgraphile/run.sh: POST the JSON body in $BODY_FILE (application/json),
-- with `Authorization: Bearer $TOKEN` when TOKEN is set, and print one machine-readable line at the end:
--   RESULT <requests> <duration µs> <p50 µs> <p99 µs> <non-2xx> <socket errors>
local f = assert(io.open(assert(os.getenv("BODY_FILE"), "set BODY_FILE"), "r"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
