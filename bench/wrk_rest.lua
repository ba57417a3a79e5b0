-- wrk script: one message per request to one of DLG_CONVS conversations, on the
-- REST channel (DLG_PATH=rest) or as a parse turn (DLG_PATH=parse); DLG_TEXT is
-- the message. Prints one JSON line of figures when done.
local path = os.getenv("DLG_PATH") or "rest"
local convs = tonumber(os.getenv("DLG_CONVS") or "1000")
local prefix = os.getenv("DLG_PREFIX") or "bench"
local text = os.getenv("DLG_TEXT") or "hello"
local headers = {["Content-Type"] = "application/json"}

function request()
  local cid = prefix .. "-" .. math.random(1, convs)
  if path == "rest" then
    local body = '{"sender": "' .. cid .. '", "message": "' .. text .. '"}'
    return wrk.format("POST", "/webhooks/rest/webhook", headers, body)
  end
  local body = '{"query": "' .. text .. '"}'
  return wrk.format("POST", "/conversations/" .. cid .. "/parse", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99)))
end
