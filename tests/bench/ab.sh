#!/usr/bin/env bash
# wasmloop A/B benchmark: two prebuilt builds of wasmloop (CLI + hello guest)
# serving the hello world, measured interleaved in one run.
#
#   A_BIN=base/wasmloop A_WASM=base/hello.wasm B_BIN=new/wasmloop B_WASM=new/hello.wasm \
#     A_LABEL=base B_LABEL=new bash tests/bench/ab.sh          # from the repo root
#   ROUNDS=12 DURATION=10s CONNS=256 OUT=ab.md ... bash tests/bench/ab.sh
#
# Environment:
#   A_BIN, A_WASM, B_BIN, B_WASM
#             required: the wasmloop CLI and the hello guest (samples/hello,
#             built for wasip1) of each build; build each guest from the same
#             tree as its CLI
#   A_LABEL, B_LABEL
#             names in the report (default A and B)
#   ROUNDS    rounds (default 8); each round runs A and B once, A first in
#             even rounds and B first in odd ones (rounds count from 0)
#   DURATION  measured wrk run per build and round (default 5s; N, Ns, Nm or Nh)
#   WARMUP    wrk warm-up before each measured run, not counted (default 1s)
#   CONNS     wrk connections (default 64)
#   WORKERS   wasmloop run --workers (default 2)
#   OUT       also write the Markdown report to this file
#   LOGDIR    keep server logs, raw wrk output and results.tsv here
#
# Each run starts the build afresh on 127.0.0.1:1337, checks that it answers
# "Hello World\n", warms it up with wrk, measures it with wrk (keep-alive, one
# wrk thread) while reading the server's utime and stime from /proc/PID/stat
# before and after, and stops it. The report gives each build's median
# req/s and CPU per request, and the B/A ratios of the runs of the same round.
# The report (Markdown) goes to stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT=1337      # samples/hello listens here unless PORT is set in its environment
URL="http://$HOST:$PORT/"
A_BIN=${A_BIN:-}
A_WASM=${A_WASM:-}
B_BIN=${B_BIN:-}
B_WASM=${B_WASM:-}
A_LABEL=${A_LABEL:-A}
B_LABEL=${B_LABEL:-B}
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-2}
OUT=${OUT:-}
LOGDIR=${LOGDIR:-}
# One wrk thread: on 2 shared cores it leaves the server as much CPU as it can
# while still loading it; the A/B ratio, not the absolute req/s, is the result.
WRK_THREADS=1
WRK_TIMEOUT=10s # as in run.sh: a slower response is a wrk timeout error
START_TRIES=300 # tries 0.1 s apart (~30 s+): time for a server to answer its first request
STOP_TRIES=50   # tries 0.1 s apart (~5 s): time for a server to exit after SIGTERM
OTHER_MAX=0.2   # cores of other load in a run above which the report counts it as disturbed

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=ab
# shellcheck source=./lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
# OUT, LOGDIR and the prebuilt files are relative to where the script was started.
abs_path OUT LOGDIR A_BIN A_WASM B_BIN B_WASM
cd "$root"

for v in A_BIN B_BIN; do
	[[ -n ${!v} ]] || die "$v is not set: the wasmloop CLI of build ${v%_BIN}"
	[[ -x ${!v} ]] || die "$v=${!v} is not an executable"
done
for v in A_WASM B_WASM; do
	[[ -n ${!v} ]] || die "$v is not set: the hello guest of build ${v%_WASM}"
	[[ -f ${!v} ]] || die "$v=${!v} does not exist"
done
[[ -n $A_LABEL && -n $B_LABEL && $A_LABEL != "$B_LABEL" ]] || die "A_LABEL and B_LABEL must be two different names"
[[ $A_LABEL$B_LABEL != *[[:space:]]* ]] || die "A_LABEL and B_LABEL must not contain spaces or tabs"
dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0 && warm_s > 0)) || die "DURATION and WARMUP must be positive"
for v in ROUNDS CONNS WORKERS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((CONNS >= WRK_THREADS)) || die "CONNS ($CONNS) must be at least the wrk thread count ($WRK_THREADS)"

ALL_SERVERS=(a b)
declare -A LABEL=([a]=$A_LABEL [b]=$B_LABEL)
declare -A BIN=([a]=$A_BIN [b]=$B_BIN)
declare -A WASM=([a]=$A_WASM [b]=$B_WASM)
need curl "install it, e.g. apt-get install -y curl"
need wrk "install it, e.g. apt-get install -y wrk"
need getconf "part of libc (libc-bin)"
need timeout "part of coreutils"
CLK_TCK=$(getconf CLK_TCK)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-ab.XXXXXX")
install_cleanup

# ---------------------------------------------------------------- helpers
# user_sys_ticks PID: "utime stime" of PID in clock ticks, each with its reaped
# children's share (cutime, cstime) added; /proc/PID/stat totals all threads.
# lib.sh's cpu_ticks gives only their sum (over live descendants too, which a
# wasmloop server does not have); the report needs user and system apart.
user_sys_ticks() {
	local line rest f
	read -r line <"/proc/$1/stat" || return 1
	rest=${line##*) } # field 2 (comm) may hold spaces and ')'
	read -r -a f <<<"$rest"
	# rest starts at field 3 (state): utime=14 stime=15 cutime=16 cstime=17
	echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}

# run_wrk SECONDS FILE: one bounded, interruptible wrk run (run_child in lib.sh);
# its CPU seconds go to FILE.cpu.
run_wrk() {
	run_child $(($1 + 30)) "$2" wrk -t "$WRK_THREADS" -c "$CONNS" -d "${1}s" --timeout "$WRK_TIMEOUT" \
		--latency -s "$here/report.lua" "$URL"
}

# row NAME ROUND POSITION STATUS [FIELDS...]: one line of results.tsv (see the report's awk).
row() {
	local IFS=$'\t'
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${LABEL[$1]}" "$2" "$3" "${*:4}" >>"$results"
}

# run_once NAME ROUND POSITION: start NAME's build, check it, warm it up,
# measure it, stop it; one line of results.tsv. Fails if the run failed or
# wrk counted errors.
run_once() {
	local name=$1 r=$2 pos=$3 f us0 us1 all0 all1 rc=0 status=ok
	f="$tmp/$name.r$r.wrk.log"
	if ! start_server "$name" "${BIN[$name]}" run --workers "$WORKERS" "${WASM[$name]}"; then
		stop_server
		row "$name" "$r" "$pos" "did not start"
		return 1
	fi
	curl -s --max-time 5 -o "$tmp/$name.body" "$URL" || true
	if ! printf 'Hello World\n' | cmp -s - "$tmp/$name.body"; then
		status="wrong answer"
		log "round $r, ${LABEL[$name]}: GET / answered [$(head -c 200 "$tmp/$name.body" | od -An -c | tr -s ' \n' ' ')], want \"Hello World\\n\""
	elif ! run_wrk "$warm_s" "$tmp/$name.r$r.warmup.log"; then
		status="wrk failed (warm-up)"
	else
		log "round $r, ${LABEL[$name]}: measuring ${dur_s}s, $CONNS connections"
		all0=$(cpu_all)
		us0=$(user_sys_ticks "$server_pid")
		run_wrk "$dur_s" "$f" || rc=$?
		us1=$(user_sys_ticks "$server_pid") || status="server died"
		all1=$(cpu_all)
		if [[ $status == ok ]] && ((rc != 0)); then
			status="wrk failed (exit $rc)"
		elif [[ $status == ok ]] && ! grep -q '^WRKBENCH ' "$f"; then
			status="no wrk summary"
		fi
	fi
	kill -0 "$server_pid" 2>/dev/null || status="server died"
	if [[ $status != ok ]]; then
		log "round $r, ${LABEL[$name]}: $status; server output:"
		tail -n 20 "$tmp/$name.server.log" | sed 's/^/    /' >&2 || true
		[[ ! -s $f ]] || sed 's/^/    /' "$f" >&2
		stop_server
		wait_port_free || die "port $PORT still busy after stopping ${LABEL[$name]}"
		row "$name" "$r" "$pos" "$status"
		return 1
	fi
	stop_server
	wait_port_free || die "port $PORT still busy after stopping ${LABEL[$name]}"
	local e errors=0
	for e in connect read write timeout status; do
		errors=$((errors + $(wrk_field "$f" "$e")))
	done
	((errors == 0)) || warn "round $r, ${LABEL[$name]}: wrk counted $errors errors (socket errors or non-2xx/3xx); the run is not counted"
	# requests duration_us p99_us errors utime stime wrk_cpu_s machine_busy_ticks machine_idle_ticks
	row "$name" "$r" "$pos" ok "$(wrk_field "$f" requests)" "$(wrk_field "$f" duration_us)" "$(wrk_field "$f" p99_us)" \
		"$errors" $((${us1% *} - ${us0% *})) $((${us1#* } - ${us0#* })) "$(cat "$f.cpu")" \
		$((${all1% *} - ${all0% *})) $((${all1#* } - ${all0#* }))
	log "round $r, ${LABEL[$name]}: $(awk -v n="$(wrk_field "$f" requests)" -v d="$(wrk_field "$f" duration_us)" \
		-v u=$((${us1% *} - ${us0% *})) -v s=$((${us1#* } - ${us0#* })) -v t="$CLK_TCK" \
		'BEGIN { printf "%.0f req/s, server CPU %.1f µs/req (user %.1f, system %.1f)", n / (d / 1e6), 1e6 * (u + s) / t / n, 1e6 * u / t / n, 1e6 * s / t / n }')"
	((errors == 0))
}

# ---------------------------------------------------------------- run
port_free || die "something already answers on $HOST:$PORT; stop it first (ss -ltnp | grep :$PORT)"
results="$tmp/results.tsv"
: >"$results"
failed=0
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$SECONDS
for ((r = 0; r < ROUNDS; r++)); do
	order=(a b)
	((r % 2 == 0)) || order=(b a)
	pos=0
	for s in "${order[@]}"; do
		pos=$((pos + 1))
		run_once "$s" "$r" "$pos" || failed=1
	done
done
elapsed=$((SECONDS - t0))

# ---------------------------------------------------------------- report
# results.tsv: name label round position status requests duration_us p99_us
# errors utime stime wrk_cpu_s machine_busy_ticks machine_idle_ticks
cat >"$tmp/ab.awk" <<'AWK'
function med(v, k,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, 0.5) }
function lo(v, k,    s) { if (!k) return ""; sorted(v, k, s); return s[1] }
function hi(v, k,    s) { if (!k) return ""; sorted(v, k, s); return s[k] }
function quart(v, k, p,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, p) }
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
function range(v, k, fmt) { return k ? f(lo(v, k), fmt) "–" f(hi(v, k), fmt) : "–" }
BEGIN { FS = "\t" }
{
	name = $1; label[name] = $2; r = $3
	if (r + 1 > rounds) rounds = r + 1
	if ($5 != "ok" || $9 != 0) { bad[name]++; next }
	secs = $7 / 1e6
	rps[name, r] = $6 / secs
	us_user[name, r] = 1e6 * $10 / tck / $6
	us_sys[name, r] = 1e6 * $11 / tck / $6
	us_tot[name, r] = 1e6 * ($10 + $11) / tck / $6
	p99[name, r] = $8 / 1000
	srv_cores[name, r] = ($10 + $11) / tck / secs
	wrk_cores[name, r] = $12 / secs
	idle[name, r] = ($13 + $14 > 0) ? 100 * $14 / ($13 + $14) : 0
	# Busy CPU of the machine not taken by the server or wrk during the run, in cores.
	# The server's and wrk's utime/stime already hold the loopback softirq work done
	# in their context, which /proc/stat counts as softirq: so this is compared with
	# all busy time, softirq included, and is near 0 on a quiet machine.
	other[name, r] = ($13 / tck - ($10 + $11) / tck - $12) / secs
	if (other[name, r] < 0) other[name, r] = 0
	if (other[name, r] > other_max) disturbed[name]++
	ok[name, r] = 1
}
function collect(name, arr, v,    r, k) {
	k = 0
	for (r = 0; r < rounds; r++) if ((name, r) in ok) v[++k] = arr[name, r]
	return k
}
function ratios(arr, v,    r, k) {
	k = 0
	for (r = 0; r < rounds; r++) if (("a", r) in ok && ("b", r) in ok && arr["a", r] > 0) v[++k] = arr["b", r] / arr["a", r]
	return k
}
function stat_row(title, arr, fmt,    k, v) {
	k = ratios(arr, v)
	printf "| %s | %s | %s | %s | %d |\n", title, f(med(v, k), fmt), (k ? f(quart(v, k, 0.25), fmt) "–" f(quart(v, k, 0.75), fmt) : "–"), range(v, k, fmt), k
}
END {
	print "### Per build (median over rounds, min–max)"
	print ""
	print "| build | runs | req/s | server CPU µs/req | user µs/req | system µs/req | p99 ms | server cores busy | wrk cores busy | machine idle % | other load, cores (runs > " other_max ") | failed runs |"
	print "| --- | --: | --- | --- | --- | --- | --- | --- | --- | --- | --- | --: |"
	split("a b", names, " ")
	for (i = 1; i <= 2; i++) {
		n = names[i]
		k = collect(n, rps, v1); collect(n, us_tot, v2); collect(n, us_user, v3); collect(n, us_sys, v4)
		collect(n, p99, v5); collect(n, srv_cores, v6); collect(n, wrk_cores, v7); collect(n, idle, v8); collect(n, other, v9)
		printf "| %s | %d | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s | %s | %s | %s | %s (%d) | %d |\n", label[n], k,
			f(med(v1, k), "%.0f"), range(v1, k, "%.0f"), f(med(v2, k), "%.1f"), range(v2, k, "%.1f"),
			f(med(v3, k), "%.1f"), range(v3, k, "%.1f"), f(med(v4, k), "%.1f"), range(v4, k, "%.1f"),
			f(med(v5, k), "%.2f"), f(med(v6, k), "%.2f"), f(med(v7, k), "%.2f"), f(med(v8, k), "%.0f"),
			f(med(v9, k), "%.2f"), disturbed[n], bad[n] + 0
		delete v1; delete v2; delete v3; delete v4; delete v5; delete v6; delete v7; delete v8; delete v9
	}
	print ""
	printf "### %s / %s, per round (both builds measured in the same round)\n", label["b"], label["a"]
	print ""
	print "| ratio | median | p25–p75 | min–max | rounds |"
	print "| --- | --- | --- | --- | --: |"
	stat_row("req/s", rps, "%.3f")
	stat_row("server CPU per request", us_tot, "%.3f")
	stat_row("user CPU per request", us_user, "%.3f")
	stat_row("system CPU per request", us_sys, "%.3f")
	stat_row("p99 latency", p99, "%.3f")
	print ""
	print "### Rounds"
	print ""
	printf "| round | first | %s req/s | %s req/s | req/s ratio | %s µs/req | %s µs/req | CPU/req ratio | other load, cores (%s, %s) |\n", label["a"], label["b"], label["a"], label["b"], label["a"], label["b"]
	print "| --: | --- | --: | --: | --: | --: | --: | --: | --- |"
	for (r = 0; r < rounds; r++) {
		both = (("a", r) in ok && ("b", r) in ok)
		printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s, %s |\n", r, (r % 2 ? label["b"] : label["a"]),
			(("a", r) in ok) ? sprintf("%.0f", rps["a", r]) : "failed", (("b", r) in ok) ? sprintf("%.0f", rps["b", r]) : "failed",
			both ? sprintf("%.3f", rps["b", r] / rps["a", r]) : "–",
			(("a", r) in ok) ? sprintf("%.1f", us_tot["a", r]) : "–", (("b", r) in ok) ? sprintf("%.1f", us_tot["b", r]) : "–",
			both ? sprintf("%.3f", us_tot["b", r] / us_tot["a", r]) : "–",
			(("a", r) in ok) ? sprintf("%.2f", other["a", r]) : "–", (("b", r) in ok) ? sprintf("%.2f", other["b", r]) : "–"
	}
}
AWK
{
	echo "## wasmloop A/B: hello world, ${LABEL[b]} vs ${LABEL[a]}"
	echo
	echo "- date: $started; $elapsed s for $ROUNDS rounds; load average before: $load_before"
	echo "- machine: $(machine_line)"
	echo "- tools: $(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}')"
	echo "- ${LABEL[a]}: \`$A_BIN run --workers $WORKERS $A_WASM\`"
	echo "- ${LABEL[b]}: \`$B_BIN run --workers $WORKERS $B_WASM\`"
	echo "- interleaved: $ROUNDS rounds, each runs both builds one after the other (${LABEL[a]} first in even rounds, ${LABEL[b]} first in odd ones), each started afresh on $URL; per run wrk -t $WRK_THREADS -c $CONNS, keep-alive, $WARMUP warm-up then $DURATION measured (wrk shares the cores with the server)"
	echo "- CPU: utime and stime of the server process (all threads) from /proc/PID/stat over the measured run, per request, CLK_TCK=$CLK_TCK; wrk cores busy from the shell's \`times\`; machine idle from /proc/stat. The loopback's softirq work done in the server's or wrk's context is in their stime (their utime+stime came to ~0.4 cores more than /proc/stat's user+system in this script's first runs)"
	echo "- other load: busy CPU of the machine during the measured run (/proc/stat, irq and softirq included) less the server's and wrk's, in cores; near 0 on a quiet machine. A run above $OTHER_MAX cores counts as disturbed (other work took CPU from it); disturbed runs are kept, the ratios cover every round"
	echo "- a run that failed or in which wrk counted errors is left out, and so is its round's ratio"
	echo
	awk -f "$here/stats.awk" -f "$tmp/ab.awk" -v tck="$CLK_TCK" -v other_max="$OTHER_MAX" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
((failed == 0)) || die "at least one run failed; see the messages above"
