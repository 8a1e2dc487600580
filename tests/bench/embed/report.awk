# Renders tests/bench/embed/run.sh's results.tsv as Markdown. Load ../stats.awk first:
#   awk -f ../stats.awk -f report.awk -v tck=CLK_TCK -v other_max=CORES -v modes="wasmloop extism httpwasm" results.tsv
#
# results.tsv, one line per run:
#   1 name  2 label  3 round  4 position  5 status ("ok" or why not)
#   6 requests  7 duration_us  8 p99_us  9 wrk errors  10 utime  11 stime (ticks)
#   12 wrk_cpu_s  13 machine_busy  14 machine_idle (ticks)  15 bytes read by wrk
#   16 guest instances the server created ("-" if it does not count them)  17 Go GCs in the server
function med(v, k,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, 0.5) }
function lo(v, k,    s) { if (!k) return ""; sorted(v, k, s); return s[1] }
function hi(v, k,    s) { if (!k) return ""; sorted(v, k, s); return s[k] }
function quart(v, k, p,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, p) }
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
function range(v, k, fmt) { return k ? f(lo(v, k), fmt) "–" f(hi(v, k), fmt) : "–" }
function mr(v, k, fmt) { return f(med(v, k), fmt) " (" range(v, k, fmt) ")" }
BEGIN { FS = "\t"; nm = split(modes, names, " ") }
{
	name = $1; label[name] = $2; r = $3
	if (r + 1 > rounds) rounds = r + 1
	first[r] = (($4 == 1) ? name : first[r])
	if ($5 != "ok" || $9 != 0) { bad[name]++; next }
	secs = $7 / 1e6
	rps[name, r] = $6 / secs
	us_user[name, r] = 1e6 * $10 / tck / $6
	us_sys[name, r] = 1e6 * $11 / tck / $6
	us_tot[name, r] = 1e6 * ($10 + $11) / tck / $6
	p99[name, r] = $8 / 1000
	srv_cores[name, r] = ($10 + $11) / tck / secs
	wrk_cores[name, r] = $12 / secs
	other[name, r] = ($13 / tck - ($10 + $11) / tck - $12) / secs
	if (other[name, r] < 0) other[name, r] = 0
	if (other[name, r] > other_max) disturbed[name]++
	bytes[name, r] = $15 / $6
	if ($16 != "-") { inst[name, r] = $16; has_inst[name] = 1 }
	gcs[name, r] = $17
	ok[name, r] = 1
}
function collect(name, arr, v,    r, k) {
	k = 0
	for (r = 0; r < rounds; r++) if ((name, r) in ok) v[++k] = arr[name, r]
	return k
}
function ratios(a, b, arr, v,    r, k) {
	k = 0
	for (r = 0; r < rounds; r++) if ((a, r) in ok && (b, r) in ok && arr[b, r] > 0) v[++k] = arr[a, r] / arr[b, r]
	return k
}
function stat_row(title, a, b, arr, fmt,    k, v) {
	k = ratios(a, b, arr, v)
	printf "| %s | %s | %s | %s | %d |\n", title, f(med(v, k), fmt), (k ? f(quart(v, k, 0.25), fmt) "–" f(quart(v, k, 0.75), fmt) : "–"), range(v, k, fmt), k
}
function cell(n, r, arr, fmt) { return ((n, r) in ok) ? sprintf(fmt, arr[n, r]) : "failed" }
END {
	print "### Per mode (median over rounds, min–max)"
	print ""
	print "| mode | runs | req/s | server CPU µs/req | user µs/req | system µs/req | p99 ms | server cores busy | wrk cores busy | other load, cores (runs > " other_max ") | bytes/resp | guest instances created per run | Go GCs per run | failed runs |"
	print "| --- | --: | --- | --- | --- | --- | --- | --- | --- | --- | --: | --- | --- | --: |"
	for (i = 1; i <= nm; i++) {
		n = names[i]
		if (!(n in label)) continue
		k = collect(n, rps, v1); collect(n, us_tot, v2); collect(n, us_user, v3); collect(n, us_sys, v4)
		collect(n, p99, v5); collect(n, srv_cores, v6); collect(n, wrk_cores, v7); collect(n, other, v9)
		collect(n, bytes, v10); collect(n, gcs, v12)
		if (has_inst[n]) { collect(n, inst, v11); insts = mr(v11, k, "%.0f") } else insts = "–"
		printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s (%d) | %s | %s | %s | %d |\n", label[n], k,
			mr(v1, k, "%.0f"), mr(v2, k, "%.1f"), mr(v3, k, "%.1f"), mr(v4, k, "%.1f"),
			f(med(v5, k), "%.2f"), f(med(v6, k), "%.2f"), f(med(v7, k), "%.2f"),
			f(med(v9, k), "%.2f"), disturbed[n], f(med(v10, k), "%.0f"), insts, mr(v12, k, "%.0f"), bad[n] + 0
		delete v1; delete v2; delete v3; delete v4; delete v5; delete v6; delete v7; delete v9; delete v10; delete v11; delete v12
	}
	a = names[1]
	for (i = 2; i <= nm; i++) {
		b = names[i]
		if (!(a in label) || !(b in label)) continue
		print ""
		printf "### %s / %s, per round (both measured in the same round)\n", label[a], label[b]
		print ""
		print "| ratio | median | p25–p75 | min–max | rounds |"
		print "| --- | --- | --- | --- | --: |"
		stat_row("req/s", a, b, rps, "%.3f")
		stat_row("server CPU per request", a, b, us_tot, "%.3f")
		stat_row("user CPU per request", a, b, us_user, "%.3f")
		stat_row("system CPU per request", a, b, us_sys, "%.3f")
		stat_row("p99 latency", a, b, p99, "%.3f")
	}
	print ""
	print "### Rounds (req/s, then server CPU µs/req as user+system)"
	print ""
	hdr = "| round | first |"; sep = "| --: | --- |"
	for (i = 1; i <= nm; i++) { n = names[i]; if (n in label) { hdr = hdr " " label[n] " req/s | " label[n] " µs/req |"; sep = sep " --: | --: |" } }
	for (i = 2; i <= nm; i++) { n = names[i]; if (n in label && a in label) { hdr = hdr " req/s " a "/" n " | CPU/req " a "/" n " |"; sep = sep " --: | --: |" } }
	print hdr; print sep
	for (r = 0; r < rounds; r++) {
		line = "| " r " | " first[r] " |"
		for (i = 1; i <= nm; i++) {
			n = names[i]; if (!(n in label)) continue
			cpu = ((n, r) in ok) ? sprintf("%.1f (%.1f+%.1f)", us_tot[n, r], us_user[n, r], us_sys[n, r]) : "–"
			line = line " " cell(n, r, rps, "%.0f") " | " cpu " |"
		}
		for (i = 2; i <= nm; i++) {
			n = names[i]; if (!(n in label) || !(a in label)) continue
			both = ((a, r) in ok && (n, r) in ok)
			line = line " " (both ? sprintf("%.3f", rps[a, r] / rps[n, r]) : "–") " | " (both ? sprintf("%.3f", us_tot[a, r] / us_tot[n, r]) : "–") " |"
		}
		print line
	}
}
