-- wrk script: POST /parse with the bodies of DLG_BODIES (one JSON body a line),
-- taken in turn, so a run parses many different texts, never one text again and
-- again. Prints one JSON line of figures when done.
local bodies = {}
for line in io.lines(os.getenv("DLG_BODIES")) do
  bodies[#bodies + 1] = line
end
local headers = {["Content-Type"] = "application/json"}
local n = 0

function setup(thread)
  thread:set("offset", math.random(1, #bodies))
end

function request()
  n = n + 1
  local body = bodies[((offset or 0) + n) % #bodies + 1]
  return wrk.format("POST", "/parse", headers, body)
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
