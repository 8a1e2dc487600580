#!/usr/bin/env bash
# wasmloop benchmark harness: wasmloop vs Node.js vs Go net/http, hello world.
#
#   bash tests/bench/run.sh                      # from the repo root
#   DURATION=10s CONNS="64 256" WORKERS=2 OUT=bench.md SKIP=wasmloop bash tests/bench/run.sh
#
# Environment (all optional):
#   DURATION  measured wrk run per server and connection count (default 10s;
#             wrk syntax: N, Ns, Nm or Nh)
#   WARMUP    wrk warm-up before each measured run, not counted (default 2s)
#   CONNS     wrk connection counts (default "64 256")
#   WORKERS   wasmloop --workers (default 2)
#   OUT       also write the Markdown report to this file
#   SKIP      servers not to run, space or comma separated: wasmloop node nethttp
#   LOGDIR    keep server logs and raw wrk output in this directory
#   WASMLOOP_BIN, HELLO_WASM
#             use this prebuilt wasmloop CLI / hello guest instead of building
#             ./cmd/wasmloop / ./samples/hello
#
# Each server is started in turn on 127.0.0.1:1337, checked (200, text/plain,
# "Hello World\n"), loaded with wrk over loopback with keep-alive, and killed.
# The report (Markdown) goes to stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT=1337      # every server under test listens here (Node's script hardcodes it)
URL="http://$HOST:$PORT/"
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64 256}
WORKERS=${WORKERS:-2}
OUT=${OUT:-}
SKIP=${SKIP:-}
LOGDIR=${LOGDIR:-}
WASMLOOP_BIN=${WASMLOOP_BIN:-}
HELLO_WASM=${HELLO_WASM:-}
# wrk threads: 2. The machine has 2 cores, shared by wrk and the server. One
# wrk thread can saturate below what a fast server does on loopback, so wrk
# would measure itself; more threads than cores only add context switches that
# steal CPU from the server. 2 threads also split 64 and 256 connections evenly.
WRK_THREADS=2
# A response slower than this is a wrk "timeout" error. wrk sizes its latency
# histogram to this value and silently drops slower samples from the
# percentiles, so it is generous: a long tail must show in p99, not vanish.
WRK_TIMEOUT=10s
START_TRIES=300 # tries 0.1 s apart (~30 s+): time for a server to answer its first request
STOP_TRIES=50   # tries 0.1 s apart (~5 s): time for a server to exit after SIGTERM

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=bench
# shellcheck source=./lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
# OUT and LOGDIR are relative to where the script was started.
abs_path OUT LOGDIR WASMLOOP_BIN HELLO_WASM
cd "$root"

dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0 && warm_s > 0)) || die "DURATION and WARMUP must be positive"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, got '$WORKERS'"
read -r -a conns_list <<<"$CONNS"
((${#conns_list[@]} > 0)) || die "CONNS is empty"
for c in "${conns_list[@]}"; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || die "CONNS must be positive integers, got '$c'"
	((c >= WRK_THREADS)) || die "CONNS ($c) must be at least the wrk thread count ($WRK_THREADS)"
done

# ---------------------------------------------------------------- servers and tools
select_and_check
need wrk "install it, e.g. apt-get install -y wrk"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-bench.XXXXXX")
install_cleanup

# ---------------------------------------------------------------- inputs
# Node runs the origin's hello world unchanged: node/hello.js must be
# byte-identical to the code block in the origin's about page.
origin="$root/../shared/origin/about-nodejs.md"
node_script="$here/node/hello.js"
[[ -f $node_script ]] || die "$node_script is missing"
node_note=""
if [[ -f $origin ]]; then
	awk '/^```javascript$/ {f = 1; next} f && /^```$/ {exit} f {print}' "$origin" >"$tmp/origin-hello.js"
	if [[ ! -s $tmp/origin-hello.js ]]; then
		warn "no \`\`\`javascript block found in $origin; cannot check $node_script"
		node_note="hello.js NOT checked against the origin (no code block found)"
	elif ! cmp -s "$tmp/origin-hello.js" "$node_script"; then
		warn "$node_script DIFFERS from the code block in $origin!
The Node.js numbers below are NOT for the origin's hello world:
$(diff "$tmp/origin-hello.js" "$node_script" || true)"
		node_note="**hello.js DIFFERS from the origin's code block**"
	else
		log "node/hello.js is byte-identical to the origin's code block"
		node_note="hello.js byte-identical to the origin's code block"
	fi
else
	log "origin page $origin not found; node/hello.js not checked"
	node_note="hello.js not checked (origin page not present)"
fi

# Unset when wasmloop is skipped; the report still names them.
wasmloop_bin="" hello_wasm="" wasmloop_note="skipped"
if wants wasmloop; then
	build_wasmloop hello "$HELLO_WASM" HELLO_WASM
	hello_wasm=$guest_wasm
fi
if wants nethttp; then
	log "building tests/bench/nethttp"
	go build -o "$tmp/nethttp" ./tests/bench/nethttp || die "go build ./tests/bench/nethttp failed"
fi

# ---------------------------------------------------------------- helpers
# check_response: the server must answer like Node's hello world.
check_response() {
	local name=$1 code ctype body
	code=$(curl -s --max-time 5 -D "$tmp/$name.headers" -o "$tmp/$name.body" -w '%{http_code}' "$URL") || code="curl-failed"
	ctype=$(curl -s --max-time 5 -o /dev/null -w '%{content_type}' "$URL") || ctype=""
	body=$(od -An -c "$tmp/$name.body" 2>/dev/null | tr -s ' ' || true)
	{
		echo "--- $name response headers"
		tr -d '\r' <"$tmp/$name.headers" 2>/dev/null || true
	} >&2
	if [[ $code != 200 || $ctype != "text/plain" ]] || ! printf 'Hello World\n' | cmp -s - "$tmp/$name.body"; then
		warn "${LABEL[$name]} does not answer like Node's hello world: status=$code content-type='$ctype' body=[$body]. Its numbers are not comparable."
		notes+=("**${LABEL[$name]}: response differs from the hello world (status $code, Content-Type '$ctype')**")
	fi
}

# run_wrk NAME CONNS SECONDS FILE: one wrk run (bounded, interruptible: see
# run_child in lib.sh); its CPU seconds go to FILE.cpu.
run_wrk() {
	local name=$1 c=$2 secs=$3 file=$4 rc=0
	run_child $((secs + 30)) "$file" \
		wrk -t "$WRK_THREADS" -c "$c" -d "${secs}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$here/report.lua" "$URL" || rc=$?
	if ((rc != 0)); then
		log "wrk failed (exit $rc) for ${LABEL[$name]} at $c connections:"
		sed 's/^/    /' "$file" >&2 || true
		return 1
	fi
}

# wrk_text_p99_us FILE: p99 from wrk's own --latency text, converted to µs.
# wrk prints it with a unit chosen per value: us, ms, s, m or h.
wrk_text_p99_us() {
	awk '$1 == "99%" {
		v = $2; u = v; sub(/^[0-9.]+/, "", u); v = v + 0
		m = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : (u == "h") ? 3.6e9 : -1
		if (m > 0) printf "%.0f\n", v * m
	}' "$1"
}

# bench_server NAME CMD...: every connection count against one server start.
bench_server() {
	local name=$1 c f before after cpu_srv reqs dur p99 e errors text_p99 text_rps status
	local all_before all_after idle_pct
	shift
	if ! start_server "$name" "$@"; then
		for c in "${conns_list[@]}"; do
			printf '%s\t%s\t%s\tdid not start\t0\t0\t0\t0\t%s\t0\t0\t0\n' "$name" "${LABEL[$name]}" "$c" "$CLK_TCK" >>"$results"
		done
		stop_server
		return 1
	fi
	check_response "$name"
	for c in "${conns_list[@]}"; do
		f="$tmp/$name.c$c.wrk.log"
		status=ok
		kill -0 "$server_pid" 2>/dev/null || status="server died"
		if [[ $status == ok ]]; then
			log "${LABEL[$name]}, $c connections: warm-up ${warm_s}s"
			run_wrk "$name" "$c" "$warm_s" "$tmp/$name.c$c.warmup.log" || status="wrk failed (warm-up)"
		fi
		if [[ $status == ok ]]; then
			log "${LABEL[$name]}, $c connections: measuring ${dur_s}s"
			all_before=$(cpu_all)
			before=$(cpu_ticks "$server_pid")
			run_wrk "$name" "$c" "$dur_s" "$f" || status="wrk failed"
			after=$(cpu_ticks "$server_pid")
			all_after=$(cpu_all)
		fi
		if [[ $status != "server died" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
			status="server died"
			log "${LABEL[$name]} died under load; its output:"
			tail -n 20 "$tmp/$name.server.log" | sed 's/^/    /' >&2 || true
		fi
		if [[ $status == ok ]] && ! grep -q '^WRKBENCH ' "$f"; then
			status="no wrk summary"
			log "wrk printed no WRKBENCH line (report.lua not run?):"
			sed 's/^/    /' "$f" >&2 || true
		fi
		if [[ $status != ok ]]; then
			printf '%s\t%s\t%s\t%s\t0\t0\t0\t0\t%s\t0\t0\t0\n' "$name" "${LABEL[$name]}" "$c" "$status" "$CLK_TCK" >>"$results"
			continue
		fi
		sed 's/^/    /' "$f" >&2
		cpu_srv=$((after - before))
		if [[ -z ${wire_noted[$name]:-} ]]; then
			wire_noted[$name]=1
			notes+=("${LABEL[$name]} response: $(awk -v b="$(wrk_field "$f" bytes)" -v r="$(wrk_field "$f" requests)" \
				'BEGIN { printf "%.0f", (r > 0) ? b / r : 0 }') bytes on the wire$(grep -qi '^transfer-encoding: *chunked' "$tmp/$name.headers" && echo ' (Transfer-Encoding: chunked)')")
		fi
		reqs=$(wrk_field "$f" requests)
		dur=$(wrk_field "$f" duration_us)
		p99=$(wrk_field "$f" p99_us)
		errors=0
		for e in connect read write timeout status; do
			errors=$((errors + $(wrk_field "$f" "$e")))
		done
		((errors == 0)) || warn "${LABEL[$name]}, $c connections: wrk counted $errors errors (socket errors or non-2xx/3xx)"
		# Cross-check the Lua numbers against wrk's human-readable output.
		text_p99=$(wrk_text_p99_us "$f")
		text_rps=$(awk '$1 == "Requests/sec:" {print $2}' "$f")
		awk -v a="$p99" -v b="${text_p99:-0}" -v r="$reqs" -v d="$dur" -v t="${text_rps:-0}" 'BEGIN {
			bad = 0
			if (b <= 0 || (a - b) > 0.01 * b + 10 || (b - a) > 0.01 * b + 10) bad = 1
			if (d > 0) { x = r / (d / 1e6); if (t <= 0 || (x - t) > 0.01 * t || (t - x) > 0.01 * t) bad = 1 }
			exit bad }' ||
			warn "wrk text output (p99 ${text_p99:-?}us, ${text_rps:-?} req/s) disagrees with report.lua (p99 ${p99}us, $reqs req in ${dur}us)"
		# Share of the whole machine left idle during the measured run.
		idle_pct=$(awk -v a="$all_before" -v b="$all_after" 'BEGIN {
			split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
			printf "%.0f", (busy + idle > 0) ? 100 * idle / (busy + idle) : 0 }')
		printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${LABEL[$name]}" "$c" \
			"$reqs" "$dur" "$p99" "$cpu_srv" "$CLK_TCK" "$errors" "$(cat "$f.cpu")" "$idle_pct" >>"$results"
	done
	stop_server
	wait_port_free || { log "port $PORT still busy after stopping ${LABEL[$name]}"; return 1; }
	return 0
}

# ---------------------------------------------------------------- run
port_free || die "something already answers on $HOST:$PORT; stop it first (ss -ltnp | grep :$PORT)"
results="$tmp/results.tsv"
: >"$results"
notes=()
declare -A wire_noted=()
failed=0
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${servers[@]}"; do
	case $s in
	wasmloop) bench_server wasmloop "$wasmloop_bin" run --workers "$WORKERS" "$hello_wasm" || failed=1 ;;
	node) bench_server node node "$node_script" || failed=1 ;;
	nethttp) bench_server nethttp "$tmp/nethttp" || failed=1 ;;
	esac
done

# ---------------------------------------------------------------- report
skipped=$(skipped_list)
{
	echo "## wasmloop hello-world benchmark"
	echo
	echo "- date: $started"
	echo "- machine: $(machine_line); load average before: $load_before"
	echo "- tools: $(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}'), $(go version 2>/dev/null | awk '{print $3}' || echo 'no go'), node $(node --version 2>/dev/null || echo 'absent')"
	echo "- load: wrk -t $WRK_THREADS, keep-alive, $WARMUP warm-up then $DURATION measured, connections: ${conns_list[*]}, $URL (wrk shares the cores with the server)"
	echo "- servers: wasmloop \`run --workers $WORKERS\` samples/hello ($wasmloop_note); Node.js node/hello.js ($node_note); net/http tests/bench/nethttp (default GOMAXPROCS)${skipped:+; skipped: $skipped}"
	echo "- CPU: utime+stime of the server process (all threads, and any child processes) from /proc/PID/stat during the measured run, CLK_TCK=$CLK_TCK"
	for n in "${notes[@]}"; do echo "- $n"; done
	echo
	awk -f "$here/report.awk" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
((failed == 0)) || die "at least one server failed; see the messages above"
