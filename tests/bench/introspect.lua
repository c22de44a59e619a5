-- wrk script: POST /oauth2/introspect for one token, the caller authenticated with
-- client_secret_basic (a key holding tokend:introspect), keep-alive.
-- BENCH_AUTH = base64("id:secret") and BENCH_TOKEN come from the environment so that
-- neither is on wrk's command line. Every answer is checked: a 200 whose body is not
-- an active token is counted as "inactive" (a benchmark of wrong answers is no benchmark).
wrk.method = "POST"
wrk.body = "token=" .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN not set")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. assert(os.getenv("BENCH_AUTH"), "BENCH_AUTH not set")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   inactive = 0
end

function response(status, headers, body)
   if status == 200 and not string.find(body, '"active":true', 1, true) then
      inactive = inactive + 1
   end
end

-- One machine-readable line for introspect.sh; latencies in microseconds.
function done(summary, latency, requests)
   local n = 0
   for _, t in ipairs(threads) do
      n = n + (t:get("inactive") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d inactive=%d connect_err=%d read_err=%d write_err=%d timeouts=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, e.status, n, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
