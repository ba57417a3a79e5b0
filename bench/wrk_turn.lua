-- wrk script: POST a turn to one of DLG_CONVS conversations (1 = one hot conversation).
-- DLG_PATH is "parse" or "continue"; prints one JSON line of figures when done.
local path = os.getenv("DLG_PATH") or "parse"
local convs = tonumber(os.getenv("DLG_CONVS") or "1000")
local prefix = os.getenv("DLG_PREFIX") or "bench"
local body
if path == "parse" then
  body = '{"query": "I am feeling great"}'
else
  body = '{"executed_action": "utter_happy", "events": []}'
end
local headers = {["Content-Type"] = "application/json"}
local n = 0

function request()
  n = n + 1
  local cid = prefix .. "-" .. (convs == 1 and 0 or math.random(1, convs))
  return wrk.format("POST", "/conversations/" .. cid .. "/" .. path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
