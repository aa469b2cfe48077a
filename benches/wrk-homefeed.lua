-- wrk cross-check of the HomeFeed scenario of benches/http.rs (an independent, C load generator):
--   TOKEN=<bearer token> wrk -t2 -c50 -d10s -s benches/wrk-homefeed.lua http://127.0.0.1:PORT/graphql
-- Run from the workspace root. Counts non-2xx responses only; benches/http.rs checks `errors`.
local f = assert(io.open("frontend-contract/operations/HomeFeed.graphql", "r"))
local query = f:read("*a")
f:close()
local escaped = query:gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n")
wrk.method = "POST"
wrk.body = '{"query":"' .. escaped .. '","operationName":"HomeFeed",'
  .. '"variables":{"first":20,"orderBy":"LATEST","commentsFirst":3}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("TOKEN"), "set TOKEN")
