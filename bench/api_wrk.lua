-- wrk script of the REST API benchmark (bench/api_bench.py):
--   wrk -t2 -c8 -d15s --timeout 30s -s bench/api_wrk.lua http://127.0.0.1:PORT -- PATHS_FILE "Basic ..."
-- Every request is a GET of a path drawn at random from PATHS_FILE (one request path a line, already
-- URL-encoded), with the Authorization header given. At the end one line `WRK_JSON {...}` with the counts
-- and latency percentiles (microseconds).

local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests_pool = {}

function init(args)
  local headers = { ["Authorization"] = args[2], ["Accept"] = "application/json" }
  for line in io.lines(args[1]) do
    if #line > 0 then
      requests_pool[#requests_pool + 1] = wrk.format("GET", line, headers)
    end
  end
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

function request()
  return requests_pool[math.random(#requests_pool)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, '
    .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max, latency.mean))
end
