# Renders the results collected by tests/bench/ws.sh as Markdown.
#
# Variables (-v): part        echo | idle: which input this is
#                 target      (echo) wasmloop / Node round-trips/s goal, e.g. 2.0
#                 rounds      (echo) rounds the script ran
#                 target_kib  (idle) wasmloop memory per idle connection goal, KiB
#
# Echo input: tab-separated lines, one per server and round (the echo rounds
# are interleaved: every server once per round; values from wsload's
# "RESULT echo" line, empty when status is not "ok"; round 0: did not start):
#   1 id  2 label  3 round  4 position in the round  5 status  6 rps
#   7 p50_us  8 p99_us  9 errors  10 conns  11 round_trips
#  12 secs (measured window)  13 reconnects
#  14 server_cpu_s (utime+stime over the window, -1 if unknown)
#  15 client_cpu_s (wsload)  16 machine_idle_pct  17 workers ("id:conns,...")
#
# Echo output: per server, the median round of each figure with p25–p75
# (errors and connections per worker summed over the rounds); then wasmloop /
# Node as the median of the per-round ratios (rounds where both ran), with
# p25–p75 and min–max, the target applying to the median.
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

# mq SRV KEY FMT [UNIT]: "median UNIT (p25–p75)" of figure KEY over SRV's ok
# rounds, each number formatted with FMT; "n/a" if none has it.
function mq(srv, key, fmt, unit,    r, k, x, s) {
    k = 0
    for (r = 1; r <= maxr; r++) if ((srv, r, key) in F) x[++k] = F[srv, r, key]
    if (k == 0) return "n/a"
    sorted(x, k, s)
    return sprintf(fmt unit " (" fmt "–" fmt ")", q(s, k, 0.5), q(s, k, 0.25), q(s, k, 0.75))
}

# med SRV KEY FMT: the median alone.
function med(srv, key, fmt,    r, k, x, s) {
    k = 0
    for (r = 1; r <= maxr; r++) if ((srv, r, key) in F) x[++k] = F[srv, r, key]
    if (k == 0) return "n/a"
    sorted(x, k, s)
    return sprintf(fmt, q(s, k, 0.5))
}

# ratio KEY GOAL OP: the per-round ratios wasmloop / node of figure KEY; sets
# RK (how many rounds), RM (median), RLIST (the ratios in round order) and
# returns "median× (p25–p75)" [(met)/(**missed**) against GOAL], or "n/a".
function ratio(key, goal, op,    r, k, x, s, out, ok) {
    k = 0; RLIST = ""
    for (r = 1; r <= maxr; r++)
        if (("wasmloop", r, key) in F && ("node", r, key) in F && F["node", r, key] > 0) {
            x[++k] = F["wasmloop", r, key] / F["node", r, key]
            RLIST = RLIST (k > 1 ? ", " : "") sprintf("%.2f", x[k])
        }
    RK = k
    if (k == 0) return "n/a"
    sorted(x, k, s)
    RM = q(s, k, 0.5); RMIN = s[1]; RMAX = s[k]
    out = sprintf("%.2f× (%.2f–%.2f)", RM, q(s, k, 0.25), q(s, k, 0.75))
    if (goal == "") return out
    ok = (op == ">=") ? (RM >= goal) : (RM <= goal)
    return out " " (ok ? "(met)" : "(**missed**)")
}

function echo_report(    i, j, srv, r, secs, k, w, parts, kv, order, cell_rounds, conns, rr, rl, rk, rmin, rmax, pr, cr, prk, crk, pmin, pmax, cmin, cmax) {
    # Gather: F[srv, round, key] for every ok round.
    for (i = 1; i <= n; i++) {
        srv = id[i]
        if (!(srv in lab)) { lab[srv] = v[i, 2]; srvs[++ns] = srv }
        r = v[i, 3] + 0
        if (r > maxr) maxr = r
        if (v[i, 5] != "ok") {
            if (!(srv in bad)) bad[srv] = v[i, 5]
            continue
        }
        okr[srv]++
        secs = v[i, 12] + 0
        F[srv, r, "rps"] = v[i, 6] + 0
        F[srv, r, "p50"] = v[i, 7] / 1000
        F[srv, r, "p99"] = v[i, 8] / 1000
        if (v[i, 14] >= 0 && v[i, 11] > 0) F[srv, r, "cpu"] = 1e6 * v[i, 14] / v[i, 11]
        if (v[i, 14] >= 0 && secs > 0) F[srv, r, "srvcores"] = v[i, 14] / secs
        if (secs > 0) F[srv, r, "clcores"] = v[i, 15] / secs
        if (v[i, 16] >= 0) F[srv, r, "idle"] = v[i, 16] + 0
        errs[srv] += v[i, 9]; recon[srv] += v[i, 13]
        conns = v[i, 10] + 0
        if (!(srv in cmin_) || conns < cmin_[srv]) cmin_[srv] = conns
        if (!(srv in cmax_) || conns > cmax_[srv]) cmax_[srv] = conns
        # connections per worker, summed over the rounds
        w = v[i, 17]
        if (w != "" && w != "-") {
            k = split(w, parts, ",")
            for (j = 1; j <= k; j++) {
                split(parts[j], kv, ":")
                if (!((srv, kv[1]) in wc)) order[srv] = order[srv] (order[srv] != "" ? "," : "") kv[1]
                wc[srv, kv[1]] += kv[2]
            }
        }
    }
    if (rounds == "") rounds = maxr
    print "### Echo round trips, interleaved"
    print ""
    print "| server | rounds | conns | round-trips/s, median (p25–p75) | p50 | p99 | server CPU µs / round trip | errors | server cores busy | wsload cores busy | machine idle | connections per worker (all rounds) |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for (i = 1; i <= ns; i++) {
        srv = srvs[i]
        if (okr[srv] == 0) {
            printf "| %s | FAILED: %s | | | | | | | | | | |\n", lab[srv], (srv in bad) ? bad[srv] : "no round"
            continue
        }
        cell_rounds = (okr[srv] == rounds) ? okr[srv] : sprintf("**%d of %d** (%s)", okr[srv], rounds, bad[srv])
        w = ""
        k = split(order[srv], parts, ",")
        for (j = 1; j <= k; j++) w = w (j > 1 ? "," : "") parts[j] ":" wc[srv, parts[j]]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            lab[srv], cell_rounds,
            (cmin_[srv] == cmax_[srv]) ? cmin_[srv] : cmin_[srv] "–" cmax_[srv],
            mq(srv, "rps", "%.0f"), mq(srv, "p50", "%.2f", " ms"), mq(srv, "p99", "%.2f", " ms"),
            mq(srv, "cpu", "%.1f"),
            (errs[srv] > 0 ? "**" errs[srv] "**" : "0") (recon[srv] > 0 ? " (" recon[srv] " reconnects)" : ""),
            med(srv, "srvcores", "%.2f"), med(srv, "clcores", "%.2f"), med(srv, "idle", "%.0f%%"),
            spread(w == "" ? "-" : w)
    }
    print ""
    rr = ratio("rps", target, ">="); rk = RK; rl = RLIST; rmin = RMIN; rmax = RMAX
    pr = ratio("p99", "", ""); prk = RK; pmin = RMIN; pmax = RMAX
    cr = ratio("cpu", "", ""); crk = RK; cmin = RMIN; cmax = RMAX
    print "| metric | wasmloop / Node, median of the per-round ratios (p25–p75) | min–max | rounds | target |"
    print "| --- | ---: | ---: | ---: | ---: |"
    printf "| round-trips/s | %s | %s | %d | ≥ %.1f× |\n", rr, rk ? sprintf("%.2f–%.2f×", rmin, rmax) : "", rk, target
    printf "| p99 latency | %s | %s | %d | — |\n", pr, prk ? sprintf("%.2f–%.2f×", pmin, pmax) : "", prk
    printf "| server CPU per round trip | %s | %s | %d | — |\n", cr, crk ? sprintf("%.2f–%.2f×", cmin, cmax) : "", crk
    if (rk > 0) {
        print ""
        printf "Round-trips/s ratio of each round both servers ran, in order (wasmloop ran first in rounds 1, 3, 5, …): %s.\n", rl
    }
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
