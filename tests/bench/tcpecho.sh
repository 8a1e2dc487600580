#!/usr/bin/env bash
# TCP echo benchmark: samples/tcpecho (wasmloop) vs the idiomatic Node.js echo server
# (node/tcpecho.js: net.createServer(s => s.pipe(s)), one process), measured interleaved.
#
#   bash tests/bench/tcpecho.sh                        # from anywhere; about 2 1/2 minutes
#   ROUNDS=4 DURATION=3s OUT=tcpecho.md bash tests/bench/tcpecho.sh
#
# Environment (all optional):
#   ROUNDS        rounds (default 6); each runs every server once per mode, the servers in an
#                 order rotated by one each round
#   DURATION      measured window per run (default 5s); WARMUP before it, fresh connections,
#                 not counted (default 1s)
#   MODES         what to measure: any of "echo stream" (default both)
#   CONNS         echo connections, one message in flight on each (default 64)
#   SIZE          echo message bytes (default 64)
#   STREAM_CONNS  stream connections (default 8); BLOCK bytes per write (default 1048576)
#   LOAD_PROCS    GOMAXPROCS of the load generator (default 1: about one core, as wrk -t1)
#   WORKERS       wasmloop --workers (default 2); Node runs one process
#   WASMLOOP_FLAGS  more flags for `wasmloop run` (e.g. --cpuprofile /tmp/tcpecho.prof)
#   SKIP          servers not to run: wasmloop node
#   PORT_BASE     wasmloop on 127.0.0.1:PORT_BASE, Node on PORT_BASE+1 (default 1357)
#   OUT           also write the Markdown report to this file
#   LOGDIR        keep server logs, every tcpload output and results.tsv here
#   WASMLOOP_BIN, TCPECHO_WASM  a prebuilt CLI / guest instead of building them
#
# Both servers run at once, each on its own loopback port, and each is checked first
# (`tcpload check`: messages of 1 B to 1 MiB echo exactly; after the client's FIN every byte
# comes back, then end of file). Then ROUNDS rounds; in each, for each mode, every server gets
# one `tcpload` run (tests/bench/tcpload, Go, standard library only) with fresh connections:
#   echo:   CONNS connections, each sending a SIZE-byte message and waiting for all of it to
#           come back (checked byte for byte) before sending the next;
#   stream: STREAM_CONNS connections, each writing BLOCK-byte blocks back to back while
#           reading (and checking) the echo; MB/s counts the echoed bytes, one direction.
# tcpload reads the server's utime and stime (/proc/PID/stat) at the start and the end of the
# measured window itself. The report gives medians and the per-round ratios wasmloop / Node.
set -euo pipefail
export LC_ALL=C

HOST=127.0.0.1 # loopback only
PORT_BASE=${PORT_BASE:-1357}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
MODES=${MODES:-echo stream}
CONNS=${CONNS:-64}
SIZE=${SIZE:-64}
STREAM_CONNS=${STREAM_CONNS:-8}
BLOCK=${BLOCK:-1048576}
LOAD_PROCS=${LOAD_PROCS:-1}
WORKERS=${WORKERS:-2}
WASMLOOP_FLAGS=${WASMLOOP_FLAGS:-}
OUT=${OUT:-}
LOGDIR=${LOGDIR:-}
WASMLOOP_BIN=${WASMLOOP_BIN:-}
TCPECHO_WASM=${TCPECHO_WASM:-}
TARGET_RATIO=2.0 # wasmloop echo round trips/s over Node's, at least (median of the per-round ratios)
START_TRIES=300  # tries 0.1 s apart for a server to print its ready line
STOP_TRIES=50    # tries 0.1 s apart for a server to exit after SIGTERM

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=tcpecho
# shellcheck source=lib.sh
. "$here/lib.sh"
abs_path OUT LOGDIR WASMLOOP_BIN TCPECHO_WASM
cd "$root"

ALL_SERVERS=(wasmloop node)
declare -A LABEL=([wasmloop]="wasmloop" [node]="Node.js")
declare -A PORTOF=([wasmloop]=$PORT_BASE [node]=$((PORT_BASE + 1)))
select_servers "${SKIP:-}"
need curl "apt-get install -y curl (used to see whether a port is free)"
need go "install Go (https://go.dev/dl/): tcpload is built from tests/bench/tcpload"
need timeout "part of coreutils"
if wants node; then need node "install Node.js, or SKIP=node"; fi
CLK_TCK=$(getconf CLK_TCK)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0)) || die "DURATION must be positive"
for v in ROUNDS CONNS SIZE STREAM_CONNS BLOCK LOAD_PROCS WORKERS PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((PORT_BASE >= 1024 && PORT_BASE <= 65534)) || die "PORT_BASE must be 1024..65534"
run_modes=()
for m in ${MODES//,/ }; do
	case $m in
	echo | stream) run_modes+=("$m") ;;
	*) die "MODES: unknown mode '$m' (known: echo stream)" ;;
	esac
done
((${#run_modes[@]} > 0)) || die "MODES is empty"
read -r -a wasmloop_flags <<<"$WASMLOOP_FLAGS"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-tcpecho.XXXXXX")
install_cleanup
declare -A PID=()
stop_all() {
	local s
	if [[ -n ${child_pid:-} ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true # timeout passes it on to tcpload
		wait "$child_pid" 2>/dev/null || true
		child_pid=""
	fi
	for s in "${!PID[@]}"; do
		server_pid=${PID[$s]}
		unset 'PID[$s]'
		stop_server
	done
}
# (set +e: the `exit $rc` subshell that hands cleanup the status must not end the trap.)
trap 'rc=$?; set +e; stop_all; (exit $rc); cleanup' EXIT

# ---------------------------------------------------------------- build
wasmloop_note="skipped"
if wants wasmloop; then
	build_wasmloop tcpecho "$TCPECHO_WASM" TCPECHO_WASM
fi
log "building tests/bench/tcpload"
go build -o "$tmp/tcpload" ./tests/bench/tcpload || die "go build ./tests/bench/tcpload failed"
tcpload=$tmp/tcpload

# ---------------------------------------------------------------- start
# start_tcp NAME CMD...: start a TCP server on PORTOF[NAME] and wait (bounded) for its ready
# line, "Server running at tcp://...". Sets PID[NAME].
start_tcp() {
	local name=$1 i
	shift
	URL="http://$HOST:${PORTOF[$name]}/" # only for port_free: a refused connect means free
	port_free || die "something already listens on $HOST:${PORTOF[$name]}; stop it first, or set PORT_BASE"
	log "starting ${LABEL[$name]}: $*"
	env -u GOMAXPROCS "$@" >"$tmp/$name.server.log" 2>&1 &
	PID[$name]=$!
	for ((i = 0; i < START_TRIES; i++)); do
		kill -0 "${PID[$name]}" 2>/dev/null || {
			sed 's/^/    /' "$tmp/$name.server.log" >&2
			die "${LABEL[$name]} exited during start-up"
		}
		grep -q '^Server running at tcp://' "$tmp/$name.server.log" && break
		sleep 0.1
	done
	((i < START_TRIES)) || die "${LABEL[$name]} printed no ready line within $((START_TRIES / 10))s"
	log "${LABEL[$name]} is up (pid ${PID[$name]}): $(grep -m1 '^Server running' "$tmp/$name.server.log")"
}
if wants wasmloop; then
	start_tcp wasmloop "$wasmloop_bin" run --workers "$WORKERS" --env "PORT=${PORTOF[wasmloop]}" --env TCPECHO_QUIET=1 \
		"${wasmloop_flags[@]}" "$guest_wasm"
fi
if wants node; then
	start_tcp node node "$here/node/tcpecho.js" "${PORTOF[node]}"
fi
for s in "${servers[@]}"; do
	run_child 60 "$tmp/$s.check.log" "$tcpload" check -addr "$HOST:${PORTOF[$s]}" || {
		sed 's/^/    /' "$tmp/$s.check.log" >&2
		die "${LABEL[$s]} failed the echo check"
	}
	log "${LABEL[$s]}: $(tail -n 1 "$tmp/$s.check.log")"
done

# ---------------------------------------------------------------- run
# result_field FILE KEY: KEY's value on tcpload's RESULT line.
result_field() {
	awk -v k="$2" '$1 == "RESULT" { for (i = 3; i <= NF; i++) { j = index($i, "="); if (substr($i, 1, j - 1) == k) print substr($i, j + 1) } }' "$1"
}
results=$tmp/results.tsv
: >"$results"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
before=$(cpu_all)
sleep 2
after=$(cpu_all)
busy_before=$(awk -v a="$before" -v b="$after" 'BEGIN { split(a, x, " "); split(b, y, " "); t = (y[1] + y[2]) - (x[1] + x[2]); printf "%.2f", (t > 0) ? 2 * (y[1] - x[1]) / t : 0 }')
failed=0
t0=$SECONDS
for ((r = 0; r < ROUNDS; r++)); do
	for m in "${run_modes[@]}"; do
		n=${#servers[@]}
		for ((i = 0; i < n; i++)); do
			s=${servers[(i + r) % n]}
			f=$tmp/$s.$m.r$r.log
			if [[ $m == echo ]]; then
				args=(echo -conns "$CONNS" -size "$SIZE")
			else
				args=(stream -conns "$STREAM_CONNS" -block "$BLOCK")
			fi
			rc=0
			GOMAXPROCS=$LOAD_PROCS run_child $((warm_s + dur_s + 60)) "$f" "$tcpload" "${args[@]}" -addr "$HOST:${PORTOF[$s]}" \
				-warmup "${warm_s}s" -duration "${dur_s}s" -cpu-pid "${PID[$s]}" -clk-tck "$CLK_TCK" -timeout "$((warm_s + dur_s + 40))s" || rc=$?
			kill -0 "${PID[$s]}" 2>/dev/null || { tail -n 20 "$tmp/$s.server.log" >&2; die "${LABEL[$s]} died in round $r ($m)"; }
			if ! grep -q '^RESULT ' "$f"; then
				sed 's/^/    /' "$f" >&2
				die "tcpload failed against ${LABEL[$s]} in round $r ($m, exit $rc)"
			fi
			((rc == 0)) || {
				failed=1
				warn "${LABEL[$s]}, round $r ($m): $(grep -m1 'first error' "$f" || echo "tcpload exit $rc")"
			}
			# results.tsv: mode server round position rate count errors user_s sys_s client_s idle_pct p50_us p99_us
			if [[ $m == echo ]]; then
				rate=$(result_field "$f" rps) count=$(result_field "$f" round_trips) p50=$(result_field "$f" p50_us) p99=$(result_field "$f" p99_us)
			else
				rate=$(result_field "$f" mbps) count=$(result_field "$f" bytes) p50="" p99=""
			fi
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$s" "$r" "$i" "$rate" "$count" "$(result_field "$f" errors)" \
				"$(result_field "$f" server_user_s)" "$(result_field "$f" server_sys_s)" "$(result_field "$f" client_cpu_s)" \
				"$(result_field "$f" machine_idle_pct)" "$p50" "$p99" >>"$results"
			log "round $r, $m, ${LABEL[$s]}: $(grep -v '^RESULT' "$f" | head -n 1 | cut -d: -f2-)"
		done
	done
done
elapsed=$((SECONDS - t0))

# ---------------------------------------------------------------- report
cat >"$tmp/report.awk" <<'AWK'
BEGIN { FS = "\t" }
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
function med(v, k,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, 0.5) }
function span(v, k, fmt,    s) { if (!k) return "–"; sorted(v, k, s); return sprintf(fmt "–" fmt, s[1], s[k]) }
{
	m = $1; s = $2; r = $3
	modes[m] = 1; servers[s] = 1; if (r + 1 > rounds) rounds = r + 1
	errs[m, s] += $7
	if ($6 <= 0 || $7 != 0) next
	# per unit: a round trip (echo) or a MB echoed (stream)
	units = (m == "echo") ? $6 : $6 / 1e6
	rate[m, s, r] = $5
	user[m, s, r] = 1e6 * $8 / units; sys[m, s, r] = 1e6 * $9 / units
	srv[m, s, r] = ($8 + $9) / secs; cli[m, s, r] = $10 / secs; idle[m, s, r] = $11
	p50[m, s, r] = $12 / 1000; p99[m, s, r] = $13 / 1000
	ok[m, s, r] = 1
}
END {
	nm = split("echo stream", ml, " "); ns = split("wasmloop node", sl, " ")
	for (a = 1; a <= nm; a++) {
		m = ml[a]; if (!(m in modes)) continue
		if (m == "echo") {
			print "### Echo: " conns " connections, " size "-byte messages, one in flight per connection"
			print ""
			print "| server | round trips/s (min–max) | p50 ms | p99 ms | server CPU µs / round trip: user | system | total | server cores busy | tcpload cores busy | machine idle | errors | runs |"
			print "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |"
		} else {
			print "### Stream: " sconns " connections, " block "-byte blocks written back to back, echoed"
			print ""
			print "| server | MB/s echoed (min–max) | server CPU µs / MB: user | system | total | server cores busy | tcpload cores busy | machine idle | errors | runs |"
			print "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"
		}
		for (b = 1; b <= ns; b++) {
			s = sl[b]; if (!(s in servers)) continue
			k = 0; split("", A); split("", U); split("", S); split("", T); split("", P5); split("", P9); split("", SB); split("", CB); split("", ID)
			for (r = 0; r < rounds; r++) if ((m, s, r) in ok) {
				k++; A[k] = rate[m, s, r]; U[k] = user[m, s, r]; S[k] = sys[m, s, r]; T[k] = U[k] + S[k]
				P5[k] = p50[m, s, r]; P9[k] = p99[m, s, r]; SB[k] = srv[m, s, r]; CB[k] = cli[m, s, r]; ID[k] = idle[m, s, r]
			}
			lat = (m == "echo") ? sprintf(" %s | %s |", f(med(P5, k), "%.2f"), f(med(P9, k), "%.2f")) : ""
			printf "| %s | %s (%s) |%s %s | %s | %s | %s | %s | %s %% | %d | %d |\n", s,
				f(med(A, k), m == "echo" ? "%.0f" : "%.1f"), span(A, k, m == "echo" ? "%.0f" : "%.1f"), lat,
				f(med(U, k), m == "echo" ? "%.2f" : "%.0f"), f(med(S, k), m == "echo" ? "%.2f" : "%.0f"), f(med(T, k), m == "echo" ? "%.2f" : "%.0f"),
				f(med(SB, k), "%.2f"), f(med(CB, k), "%.2f"), f(med(ID, k), "%.0f"), errs[m, s], k
		}
		print ""
		if (("wasmloop" in servers) && ("node" in servers)) {
			k = 0; split("", A); split("", P9); split("", T); split("", U); split("", S); list = ""
			for (r = 0; r < rounds; r++) if ((m, "wasmloop", r) in ok && (m, "node", r) in ok) {
				k++; A[k] = rate[m, "wasmloop", r] / rate[m, "node", r]
				T[k] = (user[m, "wasmloop", r] + sys[m, "wasmloop", r]) / (user[m, "node", r] + sys[m, "node", r])
				U[k] = user[m, "wasmloop", r] / user[m, "node", r]; S[k] = (sys[m, "node", r] > 0) ? sys[m, "wasmloop", r] / sys[m, "node", r] : 0
				if (m == "echo") P9[k] = p99[m, "wasmloop", r] / p99[m, "node", r]
				list = list (list == "" ? "" : ", ") sprintf("%.2f", A[k])
			}
			print "| wasmloop / Node.js, per round | median | min–max | rounds |"
			print "| --- | --: | --: | --: |"
			mr = med(A, k)
			verdict = (m == "echo" && k) ? ((mr >= target) ? " (target ≥ " target "×: met)" : " (target ≥ " target "×: **missed**)") : ""
			printf "| %s%s | %s | %s | %d |\n", (m == "echo") ? "round trips/s" : "MB/s", verdict, f(mr, "%.3f"), span(A, k, "%.3f"), k
			if (m == "echo") printf "| p99 latency (lower is better) | %s | %s | %d |\n", f(med(P9, k), "%.3f"), span(P9, k, "%.3f"), k
			printf "| server CPU per %s, total | %s | %s | %d |\n", (m == "echo") ? "round trip" : "MB", f(med(T, k), "%.3f"), span(T, k, "%.3f"), k
			printf "| … user | %s | %s | %d |\n", f(med(U, k), "%.3f"), span(U, k, "%.3f"), k
			printf "| … system | %s | %s | %d |\n", f(med(S, k), "%.3f"), span(S, k, "%.3f"), k
			print ""
			print "Per round, in order (" ((m == "echo") ? "round trips/s" : "MB/s") " ratio): " list
			print ""
		}
	}
}
AWK
{
	echo "## TCP echo: wasmloop samples/tcpecho vs Node.js net"
	echo
	echo "- date: $started; $elapsed s for $ROUNDS rounds; machine: $(machine_line); cores busy in the 2 s before: $busy_before"
	echo "- load: tests/bench/tcpload with GOMAXPROCS=$LOAD_PROCS, fresh connections each run, ${WARMUP} warm-up then ${DURATION} measured, **on the same 2 shared cores** as the servers; the servers' order rotated each round"
	echo "- wasmloop: --workers $WORKERS${WASMLOOP_FLAGS:+ $WASMLOOP_FLAGS}, samples/tcpecho with TCPECHO_QUIET=1 ($wasmloop_note); Node $(node --version 2>/dev/null || echo -): tests/bench/node/tcpecho.js (net.createServer(s => s.pipe(s))), one process"
	echo "- CPU: utime and stime of the server process (all its threads) over exactly the measured window, read by tcpload; cores busy = CPU s / window s"
	echo
	awk -f "$here/stats.awk" -f "$tmp/report.awk" -v secs="$dur_s" -v conns="$CONNS" -v size="$SIZE" -v sconns="$STREAM_CONNS" \
		-v block="$BLOCK" -v target="$TARGET_RATIO" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
[[ -z $OUT ]] || cp "$tmp/report.md" "$OUT"
((failed == 0)) || die "a tcpload run counted errors (see the warnings above)"
