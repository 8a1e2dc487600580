# Renders the results collected by tests/bench/ws.sh as Markdown.
#
# Variables (-v): part        echo | idle: which input this is
#                 target      (echo) wasmloop / Node round-trips/s goal, e.g. 2.0
#                 target_kib  (idle) wasmloop memory per idle connection goal, KiB
#
# Echo input: tab-separated lines, one per server (values from wsload's
# "RESULT echo" line; empty when status is not "ok"):
#   1 id  2 label  3 status  4 rps  5 p50_us  6 p99_us  7 errors  8 conns
#   9 round_trips  10 secs (measured window)  11 reconnects
#  12 server_cpu_s (utime+stime over the window)  13 client_cpu_s (wsload)
#  14 machine_idle_pct  15 workers ("id:conns,...")
#
# Idle input: tab-separated lines, one per server:
#   1 id  2 label  3 status  4 conns_wanted  5 conns (established)  6 failed
#   7 open_s (wsload: time to open them all)  8 wall_s (the script's wait)
#   9 rss0_kib (baseline)  10 rss_kib (held)  11 hwm_kib (VmHWM, held)
#  12 rss_after_kib (1 s after wsload closed them)  13 workers ("id:conns,...")
#  14 verified ("ok/n" after opening)  15 verified_end (before closing)
#  16 alive  17 closed  18 reset  19 data (non-blocking peek before closing)
#  20 hold_ticks (server CPU while held)  21 clk_tck  22 fd_limit (server's)
#  23 hold_s
BEGIN { FS = "\t" }

function mib(kib) { return sprintf("%.1f MiB", kib / 1024) }

# spread: "0:9500,1:9500" -> "0: 9500 (50%), 1: 9500 (50%)"
function spread(w,    parts, k, i, kv, tot, out) {
    if (w == "" || w == "-") return "—"
    k = split(w, parts, ",")
    tot = 0
    for (i = 1; i <= k; i++) { split(parts[i], kv, ":"); tot += kv[2] }
    out = ""
    for (i = 1; i <= k; i++) {
        split(parts[i], kv, ":")
        out = out (i > 1 ? ", " : "") sprintf("%s: %d (%.0f%%)", kv[1], kv[2], tot > 0 ? 100 * kv[2] / tot : 0)
    }
    return out
}

function cell(r, op, goal,    s, ok) {
    if (r == "") return "n/a"
    s = sprintf("%.2f×", r)
    if (goal == "") return s
    ok = (op == ">=") ? (r >= goal) : (r <= goal)
    return s " " (ok ? "(met)" : "(**missed**)")
}

{ n++; for (i = 1; i <= NF; i++) v[n, i] = $i; nf[n] = NF; id[n] = $1 }

END {
    if (part == "echo") echo_report(); else idle_report()
}

function echo_report(    i, rps, cpu_rt, have, rr, pr, cr, secs) {
    print "### Echo round trips"
    print ""
    print "| server | conns | round-trips/s | p50 | p99 | errors | server CPU µs / round trip | server cores busy | wsload cores busy | machine idle | connections per worker |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for (i = 1; i <= n; i++) {
        if (v[i, 3] != "ok") {
            printf "| %s | | FAILED: %s | | | | | | | | |\n", v[i, 2], v[i, 3]
            continue
        }
        secs = v[i, 10] + 0
        rps = v[i, 4] + 0
        cpu_rt = (v[i, 12] >= 0 && v[i, 9] > 0) ? 1e6 * v[i, 12] / v[i, 9] : -1
        have[id[i]] = 1; R[id[i]] = rps; P99[id[i]] = v[i, 6] + 0; C[id[i]] = cpu_rt
        printf "| %s | %d | %.0f | %.2f ms | %.2f ms | %s | %s | %s | %.2f | %s | %s |\n",
            v[i, 2], v[i, 8], rps, v[i, 5] / 1000, v[i, 6] / 1000,
            (v[i, 7] > 0 ? "**" v[i, 7] "**" : "0") (v[i, 11] > 0 ? " (" v[i, 11] " reconnects)" : ""),
            (cpu_rt >= 0) ? sprintf("%.1f", cpu_rt) : "n/a",
            (v[i, 12] >= 0 && secs > 0) ? sprintf("%.2f", v[i, 12] / secs) : "n/a",
            (secs > 0) ? v[i, 13] / secs : 0,
            (v[i, 14] >= 0) ? sprintf("%.0f%%", v[i, 14]) : "n/a", spread(v[i, 15])
    }
    print ""
    rr = (have["wasmloop"] && have["node"] && R["node"] > 0) ? R["wasmloop"] / R["node"] : ""
    pr = (have["wasmloop"] && have["node"] && P99["node"] > 0) ? P99["wasmloop"] / P99["node"] : ""
    cr = (have["wasmloop"] && have["node"] && C["node"] > 0 && C["wasmloop"] >= 0) ? C["wasmloop"] / C["node"] : ""
    print "| metric | wasmloop / Node | target |"
    print "| --- | ---: | ---: |"
    printf "| round-trips/s | %s | ≥ %.1f× |\n", cell(rr, ">=", target), target
    printf "| p99 latency | %s | — |\n", cell(pr, "<=", "")
    printf "| server CPU per round trip | %s | — |\n", cell(cr, "<=", "")
}

function idle_report(    i, conns, per, have, pk, ticks, r) {
    print "### Idle connections: server memory"
    print ""
    print "| server | connections (asked) | failed | opened in | RSS baseline | RSS held | peak RSS | **per connection** | RSS 1 s after close | alive at end | echo check | server cores while held | connections per worker |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for (i = 1; i <= n; i++) {
        if (v[i, 3] != "ok") {
            printf "| %s | FAILED: %s | | | | | | | | | | | |\n", v[i, 2], v[i, 3]
            continue
        }
        conns = v[i, 5] + 0
        per = conns > 0 ? (v[i, 10] - v[i, 9]) * 1024 / conns : 0
        have[id[i]] = (conns > 0); PER[id[i]] = per
        ticks = (v[i, 23] > 0 && v[i, 21] > 0) ? sprintf("%.2f", (v[i, 20] / v[i, 21]) / v[i, 23]) : "n/a"
        printf "| %s | %d (%d) | %s | %.1f s (%.0f/s) | %s | %s | %s | **%.0f B = %.2f KiB** | %s | %d / %d%s | %s, %s | %s | %s |\n",
            v[i, 2], conns, v[i, 4], (v[i, 6] > 0 ? "**" v[i, 6] "**" : "0"),
            v[i, 7], (v[i, 7] > 0) ? conns / v[i, 7] : 0,
            mib(v[i, 9]), mib(v[i, 10]), mib(v[i, 11]), per, per / 1024, mib(v[i, 12]),
            v[i, 16], conns,
            (v[i, 17] + v[i, 18] + v[i, 19] > 0) ? sprintf(" (**%d closed, %d reset, %d with data**)", v[i, 17], v[i, 18], v[i, 19]) : "",
            v[i, 14], v[i, 15], ticks, spread(v[i, 13])
    }
    print ""
    r = (have["wasmloop"] && have["node"] && PER["node"] > 0) ? PER["wasmloop"] / PER["node"] : ""
    print "| metric | wasmloop | target | wasmloop / Node |"
    print "| --- | ---: | ---: | ---: |"
    pk = have["wasmloop"] ? sprintf("%.2f KiB %s", PER["wasmloop"] / 1024, (PER["wasmloop"] / 1024 <= target_kib) ? "(met)" : "(**missed**)") : "n/a"
    printf "| server memory per idle connection (RSS) | %s | ≤ %s KiB | %s |\n", pk, target_kib, cell(r, "<=", "")
}
