# Renders the results collected by tests/bench/stream.sh as Markdown.
#
# Variables (-v): target      wasmloop / net-http throughput goal (e.g. 1.0)
#                 rss_target  wasmloop peak RSS goal in MiB at the largest size
#                 largest     the largest size in bytes (where rss_target applies)
#                 other_max   other load (cores) above which a round counts as disturbed
#
# Input: tab-separated lines of two kinds, in any order (results.tsv, then
# transfers.tsv).
#
# S: one per (server, size, direction)
#   2 id          wasmloop | node | nethttp
#   3 label       display name
#   4 size        bytes per transfer
#   5 size_label  e.g. "100 MiB"
#   6 dir         download | upload (uploads go to POST /count: the bytes are
#                 only counted; shown as "upload (/count)")
#   7 batch       transfers per round (one curl, one keep-alive connection)
#   8 rounds      rounds
#   9 status      "ok" or a short failure reason
#  10 cpu_ticks   server CPU (utime+stime, whole process tree) over all rounds
#  11 clk_tck     ticks per second
#  12 curl_cs     CPU of curl over the measured transfers, centiseconds
#  13 peak_kib    server VmHWM after the rounds, KiB
#  14 peak_scope  "series" (peak reset before the rounds) | "start" (could not reset)
#  15 other       cores used by everything but the servers and the script (plus steal) over the rounds
#  16 disturbed   rounds with other load above the threshold
#
# T: one per measured transfer
#   2 id  3 size  4 dir  5 round (1..rounds)  6 position in the round  7 k (in the batch)
#   8 bytes  9 seconds (curl's time_total)
#
# A server's throughput in a round is the batch's bytes / the sum of its
# transfers' seconds. Output: the per-server table (median over rounds, p25–p75,
# min–max), then the ratio table: the median of the per-round ratios (both
# servers in the same round), with p25–p75, against the targets.
BEGIN { FS = "\t"; GiB = 1024 * 1024 * 1024; MiB = 1024 * 1024 }

$1 == "S" {
    n++
    id[n] = $2; label[n] = $3; size[n] = $4; slabel[n] = $5; dir[n] = $6; batch[n] = $7; rounds[n] = $8
    status[n] = $9; ticks[n] = $10; tck[n] = $11; ccs[n] = $12; peak[n] = $13; scope[n] = $14
    other[n] = $15; dist[n] = $16
    if (!(($4) in seen_size)) { seen_size[$4] = 1; sizes[++ns] = $4; size_name[$4] = $5 }
    if (!(($2) in seen_srv)) { seen_srv[$2] = 1; srvs[++nv] = $2 }
    at[$2, $4, $6] = n
    next
}

$1 == "T" {
    rb[$2, $3, $4, $5] += $8; rs[$2, $3, $4, $5] += $9
    tb[$2, $3, $4] += $8; nt[$2, $3, $4]++
    next
}

# dname: the direction as shown; uploads are measured against /count.
function dname(d) { return (d == "upload") ? "upload (/count)" : d }

function mib(kib) { return sprintf("%.1f MiB", kib / 1024) }

function rss(i) {
    if (peak[i] <= 0) return "?"
    return mib(peak[i]) (scope[i] == "start" ? " (since start)" : "")
}

# round_mibs I V: row I's per-round MiB/s into V[1..rounds] (empty where
# missing); returns how many rounds have a value.
function round_mibs(i, v,    r, k, key) {
    k = 0
    for (r = 1; r <= rounds[i]; r++) {
        key = id[i] SUBSEP size[i] SUBSEP dir[i] SUBSEP r
        if ((key in rs) && rs[key] > 0) { v[r] = rb[key] / rs[key] / MiB; k++ } else v[r] = ""
    }
    return k
}

# good I: row I was measured, every round, every transfer.
function good(i) {
    return i && status[i] == "ok" && nt[id[i], size[i], dir[i]] == rounds[i] * batch[i]
}

# ratio_cell A B GOAL: the median of the per-round ratios of rows A and B,
# "(p25–p75)", and against GOAL (if any) met or missed.
function ratio_cell(a, b, goal,    va, vb, r, k, x, s, m, out) {
    if (!good(a) || !good(b)) return "n/a"
    round_mibs(a, va); round_mibs(b, vb)
    k = 0
    for (r = 1; r <= rounds[a]; r++)
        if (va[r] != "" && vb[r] != "" && vb[r] > 0) x[++k] = va[r] / vb[r]
    if (k == 0) return "n/a"
    sorted(x, k, s)
    m = q(s, k, 0.5)
    out = sprintf("%.2f× (%.2f–%.2f)", m, q(s, k, 0.25), q(s, k, 0.75))
    if (goal == "") return out
    return out " " (m >= goal ? "(met)" : "(**missed**)")
}

# median_mibs I: row I's median MiB/s over its rounds, or "".
function median_mibs(i,    v, k, s, r, c) {
    if (!good(i)) return ""
    round_mibs(i, v)
    k = 0
    for (r = 1; r <= rounds[i]; r++) if (v[r] != "") c[++k] = v[r]
    if (k == 0) return ""
    sorted(c, k, s)
    return sprintf("%.1f", q(s, k, 0.5))
}

END {
    print "| server | size | direction | rounds × transfers | MiB/s (median of rounds) | p25–p75 | min–max | server CPU s / GiB | curl CPU s / GiB | server peak RSS | other load (cores) | status |"
    print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for (z = 1; z <= ns; z++) {
        for (d = 1; d <= 2; d++) {
            dn = (d == 1) ? "download" : "upload"
            for (w = 1; w <= nv; w++) {
                i = at[srvs[w], sizes[z], dn]
                if (!i) continue
                if (!good(i)) {
                    st = (status[i] == "ok") ? "transfers missing" : status[i]
                    printf "| %s | %s | %s | %d × %d | | | | | | %s | %s | FAILED: %s |\n", label[i], slabel[i], dname(dn), rounds[i], batch[i],
                        (peak[i] > 0 ? rss(i) : ""), other[i], st
                    continue
                }
                round_mibs(i, v)
                k = 0
                delete c
                for (r = 1; r <= rounds[i]; r++) if (v[r] != "") c[++k] = v[r]
                delete s
                sorted(c, k, s)
                gib = tb[id[i], size[i], dir[i]] / GiB
                printf "| %s | %s | %s | %d × %d | %.1f | %.1f–%.1f | %.1f–%.1f | %.2f | %.2f | %s | %s%s | ok |\n",
                    label[i], slabel[i], dname(dn), rounds[i], batch[i], q(s, k, 0.5), q(s, k, 0.25), q(s, k, 0.75), s[1], s[k],
                    (ticks[i] / tck[i]) / gib, (ccs[i] / 100) / gib, rss(i), other[i],
                    (dist[i] > 0 ? sprintf(" (%d of %d rounds > %s)", dist[i], rounds[i], other_max) : "")
            }
        }
    }
    print ""
    print "| size | direction | wasmloop MiB/s | net/http MiB/s | Node.js MiB/s | wasmloop / net-http, median of rounds (p25–p75) | target | wasmloop / Node (p25–p75) | wasmloop peak RSS | target |"
    print "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (z = 1; z <= ns; z++) {
        sz = sizes[z]
        for (d = 1; d <= 2; d++) {
            dn = (d == 1) ? "download" : "upload"
            iw = at["wasmloop", sz, dn]; ih = at["nethttp", sz, dn]; in_ = at["node", sz, dn]
            w = median_mibs(iw); h = median_mibs(ih); nd = median_mibs(in_)
            rt = (sz == largest) ? sprintf("< %d MiB", rss_target) : "—"
            if (!iw || peak[iw] <= 0) r = "n/a"
            else if (!good(iw)) r = rss(iw) " (series failed)"
            else if (sz == largest) r = rss(iw) " " ((peak[iw] / 1024 < rss_target) ? "(met)" : "(**missed**)")
            else r = rss(iw)
            printf "| %s | %s | %s | %s | %s | %s | ≥ %.1f× | %s | %s | %s |\n", size_name[sz], dname(dn),
                (w == "" ? "n/a" : w), (h == "" ? "n/a" : h), (nd == "" ? "n/a" : nd),
                ratio_cell(iw, ih, target), target, ratio_cell(iw, in_, ""), r, rt
        }
    }
}
