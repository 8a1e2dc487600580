# Renders the results collected by tests/bench/run.sh as Markdown.
#
# Input: tab-separated lines, one per (server, connection count):
#   1 id          wasmloop | node | nethttp
#   2 label       display name
#   3 conns       wrk connections
#   4 status      "ok" or a short failure reason
#   5 requests    completed requests in the measured run (wrk summary.requests)
#   6 dur_us      measured run length in microseconds (wrk summary.duration)
#   7 p99_us      p99 latency in microseconds
#   8 cpu_ticks   server CPU (utime+stime, whole process tree) during the run
#   9 clk_tck     ticks per second (getconf CLK_TCK)
#  10 errors      wrk errors: connect+read+write+timeout+non-2xx/3xx
#  11 wrk_cpu_s   CPU seconds used by wrk itself during the run
#  12 idle_pct    percent of the whole machine's CPU time left idle in the run
#
# Output: the results table, then the ratio table against the targets.
BEGIN { FS = "\t" }

{
    n++
    id[n] = $1; label[n] = $2; conns[n] = $3; status[n] = $4
    req[n] = $5; dur[n] = $6; p99[n] = $7; ticks[n] = $8; tck[n] = $9
    errs[n] = $10; wrkcpu[n] = $11; idle[n] = $12
    if (!(($3) in seen)) { seen[$3] = 1; order[++nc] = $3 }
    if ($4 == "ok" && $5 > 0 && $6 > 0) {
        rps[$1, $3] = $5 / ($6 / 1e6)
        lat[$1, $3] = $7 / 1000.0                          # ms
        cpu[$1, $3] = ($8 / $9) / $5 * 100000              # s per 100k req
        have[$1, $3] = 1
    }
}

function ratio(a, b, conn, m) {
    if (!have[a, conn] || !have[b, conn]) return ""
    if (m == "rps") return rps[b, conn] > 0 ? rps[a, conn] / rps[b, conn] : ""
    if (m == "p99") return lat[b, conn] > 0 ? lat[a, conn] / lat[b, conn] : ""
    if (m == "cpu") return cpu[b, conn] > 0 ? cpu[a, conn] / cpu[b, conn] : ""
    return ""
}

# cell prints a ratio and, when there is a target, whether it is met.
# op is ">=" (higher is better) or "<=" (lower is better); goal "" = no target.
function cell(r, op, goal,    s, ok) {
    if (r == "") return "n/a"
    s = sprintf("%.2f×", r)
    if (goal == "") return s
    ok = (op == ">=") ? (r >= goal) : (r <= goal)
    return s " " (ok ? "(met)" : "(**missed**)")
}

END {
    print "| server | conns | req/s | p99 latency | server CPU s / 100k req | server cores busy | wrk cores busy | machine idle | wrk errors |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= n; i++) {
        if (status[i] != "ok") {
            printf "| %s | %s | %s | | | | | | |\n", label[i], conns[i], "FAILED: " status[i]
            continue
        }
        if (req[i] <= 0 || dur[i] <= 0) {
            printf "| %s | %s | 0 requests | | | | | | %s |\n", label[i], conns[i], errs[i]
            continue
        }
        secs = dur[i] / 1e6
        printf "| %s | %d | %.0f | %.2f ms | %.2f | %.2f | %.2f | %d%% | %d |\n",
            label[i], conns[i], rps[id[i], conns[i]], lat[id[i], conns[i]],
            cpu[id[i], conns[i]], (ticks[i] / tck[i]) / secs, wrkcpu[i] / secs, idle[i], errs[i]
    }
    print ""
    print "| conns | metric | wasmloop / Node | target | wasmloop / net-http | target |"
    print "| ---: | --- | ---: | ---: | ---: | ---: |"
    for (c = 1; c <= nc; c++) {
        k = order[c]
        printf "| %s | requests/s | %s | ≥ 1.5× | %s | ≥ 1.2× |\n", k,
            cell(ratio("wasmloop", "node", k, "rps"), ">=", 1.5),
            cell(ratio("wasmloop", "nethttp", k, "rps"), ">=", 1.2)
        printf "| %s | p99 latency | %s | ≤ 1.0× | %s | — |\n", k,
            cell(ratio("wasmloop", "node", k, "p99"), "<=", 1.0),
            cell(ratio("wasmloop", "nethttp", k, "p99"), "<=", "")
        printf "| %s | CPU per request | %s | ≤ 0.6× | %s | — |\n", k,
            cell(ratio("wasmloop", "node", k, "cpu"), "<=", 0.6),
            cell(ratio("wasmloop", "nethttp", k, "cpu"), "<=", "")
    }
}
