-- wrk script: POST /oauth2/token, each request with a key picked at random from
-- BENCH_KEYS_FILE (one base64("id:secret") per line, written by gen_keys.py).
-- BENCH_KEYS_MODE=seq instead walks the keys in order (thread i of n takes keys
-- i, i+n, i+2n, ...; n = BENCH_THREADS), so that one pass loads every key into
-- tokend's cache exactly once. BENCH_SCOPE adds scope=<it> to every request. Every request is formatted once in init();
-- request() only indexes a table, so wrk's Lua costs little per request.
local mode = os.getenv("BENCH_KEYS_MODE") or "random"
local nthreads = 0

function setup(thread)
   thread:set("tid", nthreads)      -- a global in that thread's Lua state
   nthreads = nthreads + 1
end

local reqs, n, pos, step = {}, 0, 1, 1

function init(args)
   local file = assert(os.getenv("BENCH_KEYS_FILE"), "BENCH_KEYS_FILE not set")
   local body = "grant_type=client_credentials"
   -- BENCH_SCOPE: ask for this scope (run.sh: one the keys lack, so that each
   -- request is answered 400 after the key is looked up, without a signature)
   local scope = os.getenv("BENCH_SCOPE")
   if scope and #scope > 0 then body = body .. "&scope=" .. scope end
   for line in io.lines(file) do
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format("POST", nil, {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["Authorization"] = "Basic " .. line,
         }, body)
      end
   end
   assert(n > 0, "no keys in " .. file)
   step = tonumber(os.getenv("BENCH_THREADS") or "1")
   pos = (tid or 0) + 1
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

function request()
   if mode == "seq" then
      local r = reqs[pos]
      pos = pos + step
      if pos > n then pos = pos - n end
      return r
   end
   return reqs[math.random(n)]
end

-- One machine-readable line for run.sh; latencies in microseconds.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
