# Renders the results collected by tests/bench/stream.sh as Markdown.
#
# Variables (-v): target      wasmloop / net-http throughput goal (e.g. 1.0)
#                 rss_target  wasmloop peak RSS goal in MiB at the largest size
#                 largest     the largest size in bytes (where rss_target applies)
#
# Input: tab-separated lines, one per (server, size, direction):
#   1 id          wasmloop | node | nethttp
#   2 label       display name
#   3 size        bytes per transfer
#   4 size_label  e.g. "100 MiB"
#   5 dir         download | upload (uploads go to POST /count: the bytes are
#                 only counted; shown as "upload (/count)")
#   6 count       measured transfers
#   7 status      "ok" or a short failure reason
#   8 mibs        the headline throughput in MiB/s (aggregate or median, see 9)
#   9 method      aggregate (all bytes / all transfer time) | median (of the transfers)
#  10 min_mibs    slowest transfer, MiB/s
#  11 med_mibs    median transfer, MiB/s
#  12 max_mibs    fastest transfer, MiB/s
#  13 bytes       bytes moved in the measured transfers
#  14 cpu_ticks   server CPU (utime+stime, whole process tree) over the series
#  15 clk_tck     ticks per second
#  16 curl_cpu_s  CPU seconds of curl over the series
#  17 peak_kib    server VmHWM after the series, KiB
#  18 peak_scope  "series" (peak reset before the series) | "start" (could not reset)
#  19 other       cores used by everything but the server and curl (plus steal) in the series
#
# Output: the results table, then the ratio table against the targets.
BEGIN { FS = "\t"; GiB = 1024 * 1024 * 1024 }

{
    n++
    id[n] = $1; label[n] = $2; size[n] = $3; slabel[n] = $4; dir[n] = $5; count[n] = $6
    status[n] = $7; mibs[n] = $8; method[n] = $9; vmin[n] = $10; vmed[n] = $11; vmax[n] = $12
    bytes[n] = $13; ticks[n] = $14; tck[n] = $15; ccpu[n] = $16; peak[n] = $17; scope[n] = $18; other[n] = $19
    if (!(($3) in seen_size)) { seen_size[$3] = 1; sizes[++ns] = $3; size_name[$3] = $4 }
    if (!(($1) in seen_srv)) { seen_srv[$1] = 1; srvs[++nv] = $1 }
    at[$1, $3, $5] = n
    ok[n] = ($7 == "ok" && $13 > 0)
}

# dname: the direction as shown; uploads are measured against /count.
function dname(d) { return (d == "upload") ? "upload (/count)" : d }

function mib(kib) { return sprintf("%.1f MiB", kib / 1024) }

function rss(i) {
    if (peak[i] <= 0) return "?"
    return mib(peak[i]) (scope[i] == "start" ? " (since start)" : "")
}

function tput(s, sz, d,    i) {
    i = at[s, sz, d]
    return (i && ok[i]) ? mibs[i] : ""
}

# cell prints a ratio and, when there is a target, whether it is met.
function cell(a, b, goal,    r, s) {
    if (a == "" || b == "" || b <= 0) return "n/a"
    r = a / b
    s = sprintf("%.2f×", r)
    if (goal == "") return s
    return s " " (r >= goal ? "(met)" : "(**missed**)")
}

END {
    print "| server | size | direction | transfers | MiB/s | per transfer MiB/s (min / median / max) | server CPU s / GiB | curl CPU s / GiB | server peak RSS | other load (cores) | status |"
    print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for (z = 1; z <= ns; z++) {
        for (d = 1; d <= 2; d++) {
            dn = (d == 1) ? "download" : "upload"
            for (v = 1; v <= nv; v++) {
                i = at[srvs[v], sizes[z], dn]
                if (!i) continue
                if (!ok[i]) {
                    printf "| %s | %s | %s | %d | | | | | %s | %s | FAILED: %s |\n", label[i], slabel[i], dname(dn), count[i],
                        (peak[i] > 0 ? rss(i) : ""), other[i], status[i]
                    continue
                }
                gib = bytes[i] / GiB
                printf "| %s | %s | %s | %d (%s) | %.1f | %.1f / %.1f / %.1f | %.2f | %.2f | %s | %s | ok |\n",
                    label[i], slabel[i], dname(dn), count[i], method[i], mibs[i], vmin[i], vmed[i], vmax[i],
                    (ticks[i] / tck[i]) / gib, ccpu[i] / gib, rss(i), other[i]
            }
        }
    }
    print ""
    print "| size | direction | wasmloop MiB/s | net/http MiB/s | Node.js MiB/s | wasmloop / net-http | target | wasmloop / Node | wasmloop peak RSS | target |"
    print "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (z = 1; z <= ns; z++) {
        sz = sizes[z]
        for (d = 1; d <= 2; d++) {
            dn = (d == 1) ? "download" : "upload"
            w = tput("wasmloop", sz, dn); h = tput("nethttp", sz, dn); nd = tput("node", sz, dn)
            i = at["wasmloop", sz, dn]
            if (!i || peak[i] <= 0) { r = "n/a"; rt = (sz == largest) ? sprintf("< %d MiB", rss_target) : "—" }
            else if (!ok[i]) { r = rss(i) " (series failed)"; rt = (sz == largest) ? sprintf("< %d MiB", rss_target) : "—" }
            else if (sz == largest) {
                r = rss(i) " " ((peak[i] / 1024 < rss_target) ? "(met)" : "(**missed**)")
                rt = sprintf("< %d MiB", rss_target)
            } else { r = rss(i); rt = "—" }
            printf "| %s | %s | %s | %s | %s | %s | ≥ %.1f× | %s | %s | %s |\n", size_name[sz], dname(dn),
                (w == "" ? "n/a" : w), (h == "" ? "n/a" : h), (nd == "" ? "n/a" : nd),
                cell(w, h, target), target, cell(w, nd, ""), r, rt
        }
    }
}
