-- wrk script: POST /oauth2/token with one key (client_secret_basic), keep-alive.
-- The Basic credentials come from the environment (BENCH_AUTH = base64("id:secret"))
-- so that the secret is not on wrk's command line. No request() function: wrk
-- sends one pre-built request, so the load generator costs as little as possible.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. assert(os.getenv("BENCH_AUTH"), "BENCH_AUTH not set")

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
