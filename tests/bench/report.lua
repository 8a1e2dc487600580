-- wrk script used by tests/bench/run.sh.
--
-- It defines only done(), so wrk keeps its static, pre-built request and
-- runs no Lua per request or per response: the load generator costs the
-- same as without a script. done() prints one machine-readable line with
-- exact integers (latencies in microseconds), so run.sh does not have to
-- parse wrk's human-formatted units ("980.00us", "1.02ms", "1.20s", "2.00m").
done = function(summary, latency, requests)
  local e = summary.errors
  local function int(x) return math.floor(x + 0.5) end
  io.write(string.format(
    "WRKBENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d"
      .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
    int(summary.requests), int(summary.duration), int(summary.bytes),
    int(latency:percentile(50)), int(latency:percentile(99)), int(latency.max),
    int(e.connect), int(e.read), int(e.write), int(e.status), int(e.timeout)))
end
