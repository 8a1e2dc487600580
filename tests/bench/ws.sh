#!/usr/bin/env bash
# wasmloop WebSocket benchmark: echo round trips and idle-connection memory,
# wasmloop (samples/wsecho) vs Node.js (the `ws` package).
#
#   bash tests/bench/ws.sh                       # from the repo root
#   ROUNDS=2 bash tests/bench/ws.sh              # a quick run
#   ROUNDS=6 DURATION=3s CONNS=5000 WORKERS=2 OUT=ws.md SKIP=node bash tests/bench/ws.sh
#
# Environment (all optional):
#   ROUNDS      interleaved echo rounds (default 10): in each, every server gets
#               one warmed-up, measured echo run
#   DURATION    measured echo window per server and round (default 4s; N, Ns, Nm or Nh)
#   WARMUP      echo warm-up before each window, not counted (default 1s)
#   ECHO_CONNS  echo connections, each with one message in flight (default 256)
#   SIZE        echo message payload in bytes (default 32), binary
#   CONNS       idle connections to hold (default 100000); capped, with a
#               warning, to what the server process's descriptor limit allows
#   SOURCES     local addresses the idle connections come from, round-robin
#               (default 127.0.0.2-127.0.0.9; loopback only)
#   VERIFY      idle connections whose liveness is checked with an echo, after
#               opening them and again before closing them (default 100)
#   HOLD        seconds to hold the idle connections before reading RSS (default 2)
#   CONNECT_TIMEOUT
#               longest opening the idle connections may take, in seconds (default 300)
#   MODES       what to measure: any of "echo idle" (default both)
#   WORKERS     wasmloop --workers (default 2)
#   WASMLOOP_FLAGS  more flags for `wasmloop run`
#   PORT_BASE   wasmloop listens on 127.0.0.1:PORT_BASE, Node.js on PORT_BASE+1
#               (default 1337)
#   OUT         also write the Markdown report to this file
#   SKIP        servers not to run, space or comma separated: wasmloop node
#   LOGDIR      keep server logs, wsload output and the result files here
#   WASMLOOP_BIN, WSECHO_WASM
#               use this prebuilt wasmloop CLI / wsecho guest instead of
#               building ./cmd/wasmloop / ./samples/wsecho
#
# Echo, interleaved: both servers start at once, each on its own loopback port,
# and each is checked (text and binary messages of 0, 125, 126, 65535 and 65536
# bytes must come back unchanged). Then ROUNDS rounds: in each, every server
# gets one wsload run (ECHO_CONNS fresh connections, WARMUP, then DURATION
# measured), one server after the other, the order rotated by one each round,
# so load that comes and goes on a shared machine hits both alike and every
# round gives a ratio between servers measured seconds apart. The report gives
# each server's median round (p25–p75) and the median of the per-round ratios.
# Idle memory: afterwards, one server at a time, each started afresh.
# The load generator is tests/bench/wsload (Go, gobwas/ws). The report
# (Markdown) goes to stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT_BASE=${PORT_BASE:-1337}
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-4s}
WARMUP=${WARMUP:-1s}
ECHO_CONNS=${ECHO_CONNS:-256}
SIZE=${SIZE:-32}
CONNS=${CONNS:-100000}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.9}
VERIFY=${VERIFY:-100}
HOLD=${HOLD:-2}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-300}
MODES=${MODES:-echo idle}
WORKERS=${WORKERS:-2}
WASMLOOP_FLAGS=${WASMLOOP_FLAGS:-}
OUT=${OUT:-}
SKIP=${SKIP:-}
LOGDIR=${LOGDIR:-}
WASMLOOP_BIN=${WASMLOOP_BIN:-}
WSECHO_WASM=${WSECHO_WASM:-}
TARGET_RATIO=2.0 # wasmloop round-trips/s / Node's, at least (median of the rounds)
TARGET_KIB=4     # wasmloop memory per idle connection, KiB, at most
SERVER_FD_SPARE=64 # descriptors left to the server beyond one per connection
CLIENT_FD_SPARE=64 # likewise for each wsload process
START_TRIES=300    # tries 0.1 s apart (~30 s+): time for a server to answer its first request
STOP_TRIES=50      # tries 0.1 s apart (~5 s): time for a server to exit after SIGTERM

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=ws
# shellcheck source=./lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
# OUT, LOGDIR and the prebuilt files are relative to where the script was started.
abs_path OUT LOGDIR WASMLOOP_BIN WSECHO_WASM
cd "$root"

dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0)) || die "DURATION must be positive"
for v in ROUNDS ECHO_CONNS CONNS WORKERS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for v in SIZE VERIFY HOLD; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
[[ $CONNECT_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "CONNECT_TIMEOUT must be a positive number of seconds"
if ! [[ $PORT_BASE =~ ^[1-9][0-9]*$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65534)); then
	die "PORT_BASE must be a port from 1024 to 65534, got '$PORT_BASE'"
fi
do_echo=0 do_idle=0
for m in ${MODES//,/ }; do
	case $m in
	echo) do_echo=1 ;;
	idle) do_idle=1 ;;
	*) die "MODES: unknown mode '$m' (known: echo idle)" ;;
	esac
done
((do_echo + do_idle > 0)) || die "MODES is empty"
# Every source must be a loopback address (127.0.0.0/8).
for s in ${SOURCES//[,-]/ }; do
	[[ $s =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "SOURCES: '$s' is not a 127.x.y.z loopback address"
done
read -r -a wasmloop_flags <<<"$WASMLOOP_FLAGS"

# ---------------------------------------------------------------- servers and tools
# The shared checks know three servers; this harness has no net/http one.
skip_user=$SKIP
SKIP="$SKIP nethttp"
select_and_check
ALL_SERVERS=(wasmloop node)
select_servers "$skip_user"
# Each server has its own port, in the echo rounds (both listening) and the idle run alike.
declare -A port_of=([wasmloop]=$PORT_BASE [node]=$((PORT_BASE + 1)))
# use_port NAME: point PORT, URL and WS_URL (what lib.sh's start_server,
# port_free and wait_port_free use) at NAME's port.
use_port() {
	PORT=${port_of[$1]}
	URL="http://$HOST:$PORT/"
	WS_URL="ws://$HOST:$PORT/"
}
need go "install Go (https://go.dev/dl/): wsload is built from tests/bench/wsload"
node_script="$here/node/wsecho.js"
ws_version="absent"
if wants node; then
	[[ -f $node_script ]] || die "$node_script is missing"
	ws_version=$(cd "$here/node" && node -p "require('ws/package.json').version" 2>/dev/null) ||
		die "Node cannot load the 'ws' package: run npm ci --prefix tests (or SKIP=node)"
fi

# Descriptors: every process started from here inherits the soft limit, raised
# to the hard one. One connection costs one descriptor on each side.
fd_hard=$(ulimit -Hn)
[[ $fd_hard == unlimited ]] && fd_hard=1048576
ulimit -Sn "$fd_hard" 2>/dev/null || warn "could not raise the soft descriptor limit to $fd_hard"
fd_soft=$(ulimit -Sn)
[[ $fd_soft == unlimited ]] && fd_soft=1048576
client_cap=$((fd_soft - CLIENT_FD_SPARE)) # connections one wsload process can hold
((client_cap > 0)) || die "the descriptor limit ($fd_soft) is too low to hold any connection"
# Ephemeral ports: each source address has its own range towards one server port.
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
n_sources=$(awk -v s="$SOURCES" 'function ip(x,    a) { split(x, a, "."); return ((a[1] * 256 + a[2]) * 256 + a[3]) * 256 + a[4] }
	BEGIN {
		k = split(s, parts, ",")
		for (i = 1; i <= k; i++) {
			gsub(/ /, "", parts[i])
			if (parts[i] == "") continue
			if (split(parts[i], r, "-") == 2) n += ip(r[2]) - ip(r[1]) + 1; else n++
		}
		print (n > 0) ? n : 1 # no SOURCES: the kernel picks one source address
	}')
port_cap=$((n_sources * (port_hi - port_lo + 1)))

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-ws.XXXXXX")
install_cleanup
# The idle run has several wsload processes at once: stop them too.
loader_pids=()
stop_loaders() {
	local p i
	for p in "${loader_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${loader_pids[@]}"; do
		# timeout passes TERM on and sends KILL 5 s later; this wait is bounded too.
		for ((i = 0; i < 150; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	loader_pids=()
}
# The echo rounds run both servers at once: srv_pid holds them (lib.sh's
# cleanup stops only server_pid); stop_servers stops wsload, then each of them.
declare -A srv_pid=()
stop_servers() {
	local s
	if [[ -n ${child_pid:-} ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true # timeout passes it on to wsload
		wait "$child_pid" 2>/dev/null || true
		child_pid=""
	fi
	for s in "${!srv_pid[@]}"; do
		server_pid=${srv_pid[$s]}
		unset 'srv_pid[$s]'
		stop_server
	done
}
# (set +e: the `exit $rc` subshell that hands cleanup the status must not end the trap.)
trap 'rc=$?; set +e; stop_loaders; stop_servers; (exit $rc); cleanup' EXIT

# ---------------------------------------------------------------- inputs
wasmloop_bin="" wsecho_wasm="" wasmloop_note="skipped"
if wants wasmloop; then
	build_wasmloop wsecho "$WSECHO_WASM" WSECHO_WASM
	wsecho_wasm=$guest_wasm
fi
log "building tests/bench/wsload"
go build -o "$tmp/wsload" ./tests/bench/wsload || die "go build ./tests/bench/wsload failed"
wsload=$tmp/wsload

# ---------------------------------------------------------------- helpers
# proc_kib PID FIELD: a "FIELD: N kB" value of /proc/PID/status (VmRSS, VmHWM).
proc_kib() {
	awk -v f="$2:" '$1 == f {print $2; found = 1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

# result_field FILE KIND KEY: KEY's value on wsload's "RESULT KIND ..." line(s),
# one per line (several wsload processes write several files; callers sum).
result_field() {
	awk -v kind="$2" -v k="$3" '$1 == "RESULT" && $2 == kind {
		for (i = 3; i <= NF; i++) { j = index($i, "="); if (substr($i, 1, j - 1) == k) print substr($i, j + 1) } }' "$1"
}

# fd_room PID: sets server_fd_limit (the server's soft RLIMIT_NOFILE) and
# server_fd_room, the descriptors it may still open (limit - open - spare).
server_fd_limit=0 server_fd_room=0
fd_room() {
	local pid=$1 open
	server_fd_limit=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null || echo 0)
	[[ $server_fd_limit == unlimited ]] && server_fd_limit=1048576
	open=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	server_fd_room=$((server_fd_limit - open - SERVER_FD_SPARE))
}

# pause SECONDS: sleep in the background and wait for it, so that Ctrl-C or
# TERM runs the EXIT trap at once (bash defers traps until a foreground
# command ends).
pause() {
	sleep "$1" &
	wait $! || true
}

# died NAME PID: true (and says so, once) if the server PID is gone.
declare -A dead=()
died() {
	[[ -n $2 ]] && kill -0 "$2" 2>/dev/null && return 1
	[[ -z ${dead[${2:-none}]:-} ]] || return 0
	dead[${2:-none}]=1
	log "${LABEL[$1]} died; its output:"
	tail -n 20 "$tmp/$1.server.log" | sed 's/^/    /' >&2 || true
	return 0
}

# check_echo NAME: messages at the frame-length boundaries must come back
# unchanged, as text and as binary, on NAME's port (WS_URL: see use_port). A
# failure is a note, and the measured rounds (which check every echo too) still run.
check_echo() {
	local name=$1 spec size flag f bad=""
	for spec in 0:text 0:binary 125:binary 126:text 65535:binary 65536:text 65536:binary; do
		size=${spec%%:*}
		flag=(-text=false)
		[[ ${spec#*:} == text ]] && flag=(-text)
		f="$tmp/$name.check.$size.${spec#*:}.log"
		if ! run_child 40 "$f" "$wsload" echo -url "$WS_URL" -conns 2 -warmup 0s -duration 200ms \
			-size "$size" "${flag[@]}" -dial-timeout 5s -retries 0 -timeout 30s ||
			[[ $(result_field "$f" echo round_trips) -lt 1 ]]; then
			bad+="${bad:+, }$size-byte ${spec#*:}"
			log "${LABEL[$name]}: echo of a $size-byte ${spec#*:} message failed:"
			grep -v '^RESULT' "$f" | head -n 5 | sed 's/^/    /' >&2 || true
		fi
	done
	if [[ -n $bad ]]; then
		warn "${LABEL[$name]} did not echo: $bad"
		notes+=("**${LABEL[$name]}: wrong or missing echo for: $bad**")
	else
		log "${LABEL[$name]}: text and binary messages of 0, 125, 126, 65535 and 65536 bytes echo unchanged"
	fi
}

# echo_row NAME ROUND POSITION STATUS [FILE]: one line of echo.tsv (see ws.awk).
echo_row() {
	local name=$1 round=$2 pos=$3 status=$4 f=${5:-} k vals=()
	for k in rps p50_us p99_us errors conns round_trips secs reconnects server_cpu_s client_cpu_s machine_idle_pct workers; do
		if [[ -n $f ]]; then vals+=("$(result_field "$f" echo "$k" | head -n 1)"); else vals+=(""); fi
	done
	local IFS=$'\t'
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${LABEL[$name]}" "$round" "$pos" "$status" "${vals[*]}" >>"$echo_tsv"
}

# server_cmd NAME: sets scmd, the command that runs NAME on its port.
server_cmd() {
	case $1 in
	wasmloop) scmd=("$wasmloop_bin" run --workers "$WORKERS" --env "PORT=${port_of[wasmloop]}" "${wasmloop_flags[@]}" "$wsecho_wasm") ;;
	node) scmd=("PORT=${port_of[node]}" node "$node_script") ;;
	esac
}

# start_echo_servers: every server at once, each on its own port, each
# checked; those that are up go into srv_pid and echo_part.
echo_part=()
start_echo_servers() {
	local s
	for s in "${servers[@]}"; do
		use_port "$s"
		server_cmd "$s"
		if start_server "$s" "${scmd[@]}"; then
			srv_pid[$s]=$server_pid
			server_pid=""
		else
			[[ -z $server_pid ]] || stop_server
			echo_row "$s" 0 0 "did not start"
			failed=1
		fi
	done
	for s in "${servers[@]}"; do
		[[ -n ${srv_pid[$s]:-} ]] || continue
		use_port "$s"
		check_echo "$s"
		echo_part+=("$s")
	done
}

# echo_once NAME ROUND POSITION: one warmed-up, measured wsload echo run
# against NAME; one line of echo.tsv. Sets run_rps ("" if the run failed).
echo_once() {
	local name=$1 round=$2 pos=$3 f status=ok rc=0 pid=${srv_pid[$1]}
	run_rps=""
	f="$tmp/$name.echo.$round.wsload.log"
	run_child $((warm_s + dur_s + 90)) "$f" "$wsload" echo -url "ws://$HOST:${port_of[$name]}/" -conns "$ECHO_CONNS" \
		-size "$SIZE" -warmup "${warm_s}s" -duration "${dur_s}s" -cpu-pid "$pid" -clk-tck "$CLK_TCK" \
		-timeout "$((warm_s + dur_s + 60))s" || rc=$?
	if died "$name" "$pid"; then
		status="server died in round $round"
	elif ! grep -q '^RESULT echo ' "$f"; then
		status="wsload failed in round $round (exit $rc)"
		sed 's/^/    /' "$f" | tail -n 10 >&2 || true
	elif ((rc != 0)); then
		warn "${LABEL[$name]}, round $round: wsload counted $(result_field "$f" echo errors) errors; first: $(grep -m1 '^echo: first error' "$f" | cut -d' ' -f4- || true)"
	fi
	if [[ $status != ok ]]; then
		log "round $round/$ROUNDS, ${LABEL[$name]}: $status"
		echo_row "$name" "$round" "$pos" "$status"
		return 1
	fi
	echo_row "$name" "$round" "$pos" ok "$f"
	run_rps=$(result_field "$f" echo rps | head -n 1)
	log "round $round/$ROUNDS, ${LABEL[$name]}: $(awk -v r="$run_rps" -v a="$(result_field "$f" echo p50_us | head -n 1)" \
		-v b="$(result_field "$f" echo p99_us | head -n 1)" -v c="$(result_field "$f" echo server_cpu_s | head -n 1)" \
		-v n="$(result_field "$f" echo round_trips | head -n 1)" -v w="$(result_field "$f" echo workers | head -n 1)" \
		'BEGIN { printf "%.0f round-trips/s, p50 %.2f ms, p99 %.2f ms, %s µs server CPU / round trip, workers %s",
			r, a / 1000, b / 1000, (c >= 0 && n > 0) ? sprintf("%.1f", 1e6 * c / n) : "n/a", w }')"
}

# echo_rounds: ROUNDS rounds; in each, every server that is still up gets one
# echo_once, one after the other, the order rotated by one each round (with two
# servers: alternating), so each is first and second equally often.
echo_rounds() {
	local r k s pos n=${#echo_part[@]} t0=$SECONDS
	local -a order=()
	local -A rps=()
	((n > 0)) || return 0
	log "echo: $ROUNDS rounds; each server per round: $ECHO_CONNS connections, ${SIZE}-byte binary messages, warm-up ${warm_s}s, measured ${dur_s}s; interleaved"
	for ((r = 1; r <= ROUNDS; r++)); do
		order=()
		for ((k = 0; k < n; k++)); do order+=("${echo_part[(r - 1 + k) % n]}"); done
		rps=()
		pos=0
		for s in "${order[@]}"; do
			pos=$((pos + 1))
			if [[ -n ${echo_failed[$s]:-} ]]; then
				echo_row "$s" "$r" "$pos" "not run: ${echo_failed[$s]}"
				continue
			fi
			if echo_once "$s" "$r" "$pos"; then
				rps[$s]=$run_rps
			else
				failed=1
				# A dead server is not run again; a failed wsload run is tried next round.
				died "$s" "${srv_pid[$s]}" && echo_failed[$s]="died in round $r"
			fi
		done
		if [[ -n ${rps[wasmloop]:-} && -n ${rps[node]:-} ]]; then
			log "round $r/$ROUNDS: wasmloop / Node.js $(awk -v a="${rps[wasmloop]}" -v b="${rps[node]}" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }')"
		fi
	done
	echo_secs=$((SECONDS - t0))
	log "echo: $ROUNDS rounds in $echo_secs s"
}
declare -A echo_failed=()
echo_secs=0

# idle_row NAME STATUS [fields...]: one line of idle.tsv (see ws.awk).
idle_row() {
	local name=$1 status=$2
	shift 2
	local IFS=$'\t'
	printf '%s\t%s\t%s\t%s\n' "$name" "${LABEL[$name]}" "$status" "$*" >>"$idle_tsv"
}

# bench_idle NAME CMD...: a fresh server, its baseline RSS, then CONNS idle
# connections (capped to the descriptor limit), held HOLD seconds, RSS again.
bench_idle() {
	local name=$1 room want n procs share k i f ready rss0 rss hwm ticks0 ticks1 rss_after status=ok
	shift
	if ! start_server "$name" "$@"; then
		idle_row "$name" "did not start"
		stop_server
		return 1
	fi
	# Baseline: after a couple of plain requests and a short echo over a few
	# connections (one-time start-up of each worker's WebSocket path is not
	# per-connection memory), and a settle.
	curl -s -o /dev/null --max-time 5 "$URL" || true
	curl -s -o /dev/null --max-time 5 "$URL" || true
	run_child 30 "$tmp/$name.idle.pre.log" "$wsload" echo -url "$WS_URL" -conns $((2 * WORKERS)) -warmup 0s -duration 300ms \
		-size "$SIZE" -timeout 20s ||
		log "${LABEL[$name]}: the echo before the baseline failed: $(grep -v '^RESULT' "$tmp/$name.idle.pre.log" | tail -n 1)"
	pause 1
	rss0=$(proc_kib "$server_pid" VmRSS)
	# How many connections fit: the server holds one descriptor per connection
	# in one process, a hard limit; the client side can be split over processes.
	fd_room "$server_pid"
	room=$server_fd_room
	n=$CONNS
	want=$CONNS
	if ((n > room)); then
		n=$room
		warn "CONNS=$CONNS capped to $n for ${LABEL[$name]}: the server is one process and its descriptor limit is $server_fd_limit (RLIMIT_NOFILE; the hard limit here is $fd_hard and cannot be raised without CAP_SYS_RESOURCE), one descriptor per connection. Memory per connection is measured at $n connections."
		notes+=("**${LABEL[$name]}: CONNS=$CONNS capped to $n by the server's descriptor limit ($server_fd_limit)**")
	fi
	if ((n > port_cap)); then
		n=$port_cap
		warn "CONNS capped to $n for ${LABEL[$name]}: $n_sources source address(es) × $((port_hi - port_lo + 1)) ephemeral ports"
		notes+=("**${LABEL[$name]}: connections capped to $n by the ephemeral ports of SOURCES**")
	fi
	if ((n < 1)); then
		idle_row "$name" "no descriptor left for connections"
		stop_server
		return 1
	fi
	procs=$(((n + client_cap - 1) / client_cap))
	share=$(((n + procs - 1) / procs))
	log "${LABEL[$name]}: baseline RSS $rss0 KiB; opening $n idle connections from $SOURCES ($procs wsload process(es))"
	local t0=$SECONDS
	for ((k = 0; k < procs; k++)); do
		local c=$share
		((k == procs - 1)) && c=$((n - share * (procs - 1)))
		f="$tmp/$name.idle.$k.wsload.log"
		timeout --kill-after=5 $((CONNECT_TIMEOUT + 120)) "$wsload" idle -url "$WS_URL" -conns "$c" \
			-sources "$SOURCES" -verify $(((VERIFY + procs - 1) / procs)) -stdin=false \
			-timeout "$((CONNECT_TIMEOUT + 60))s" >"$f" 2>&1 &
		loader_pids+=($!)
	done
	# Wait (bounded) until every wsload holds its connections.
	for ((i = 0; i < CONNECT_TIMEOUT * 10; i++)); do
		ready=0
		for ((k = 0; k < procs; k++)); do
			f="$tmp/$name.idle.$k.wsload.log"
			if grep -q '^READY$' "$f"; then
				ready=$((ready + 1))
			elif ! kill -0 "${loader_pids[k]}" 2>/dev/null; then
				status="wsload $k exited before READY"
			fi
		done
		((ready == procs)) && break
		[[ $status == ok ]] || break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	local connect_s=$((SECONDS - t0))
	((ready == procs)) || [[ $status != ok ]] || status="not all connections opened within ${CONNECT_TIMEOUT}s"
	died "$name" "$server_pid" && status="server died"
	if [[ $status == ok ]]; then
		log "${LABEL[$name]}: holding $(cat "$tmp/$name".idle.*.wsload.log | result_field /dev/stdin idle conns | awk '{s += $1} END {print s + 0}') connections for ${HOLD}s"
		ticks0=$(cpu_ticks "$server_pid")
		pause "$HOLD"
		rss=$(proc_kib "$server_pid" VmRSS)
		hwm=$(proc_kib "$server_pid" VmHWM)
		ticks1=$(cpu_ticks "$server_pid")
		died "$name" "$server_pid" && status="server died"
	fi
	stop_loaders
	for ((k = 0; k < procs; k++)); do sed 's/^/    /' "$tmp/$name.idle.$k.wsload.log" >&2 || true; done
	if [[ $status != ok ]]; then
		idle_row "$name" "$status"
		stop_server
		wait_port_free || true
		return 1
	fi
	pause 1
	rss_after=$(proc_kib "$server_pid" VmRSS)
	# Sum what the wsload processes say.
	local all="$tmp/$name.idle.all.log"
	cat "$tmp/$name".idle.*.wsload.log >"$all"
	local sum_conns sum_failed secs workers verified alive closed reset data
	sum_conns=$(result_field "$all" idle conns | awk '{s += $1} END {print s + 0}')
	sum_failed=$(result_field "$all" idle failed | awk '{s += $1} END {print s + 0}')
	secs=$(result_field "$all" idle secs | awk '$1 > m {m = $1} END {print m + 0}')
	workers=$(result_field "$all" idle workers | awk -F, '{for (i = 1; i <= NF; i++) { split($i, kv, ":"); if (kv[1] != "-") { if (!(kv[1] in c)) o[++n] = kv[1]; c[kv[1]] += kv[2] } } }
		END { for (i = 1; i <= n; i++) printf "%s%s:%d", (i > 1 ? "," : ""), o[i], c[o[i]]; if (!n) printf "-" }')
	verified=$(result_field "$all" idle verified | awk -F/ '{a += $1; b += $2} END {print a + 0 "/" b + 0}')
	local end_verified
	end_verified=$(result_field "$all" idle-end verified | awk -F/ '{a += $1; b += $2} END {print a + 0 "/" b + 0}')
	alive=$(result_field "$all" idle-end alive | awk '{s += $1} END {print s + 0}')
	closed=$(result_field "$all" idle-end closed | awk '{s += $1} END {print s + 0}')
	reset=$(result_field "$all" idle-end reset | awk '{s += $1} END {print s + 0}')
	data=$(result_field "$all" idle-end data | awk '{s += $1} END {print s + 0}')
	((sum_failed == 0)) || warn "${LABEL[$name]}: $sum_failed idle connections could not be opened; first error: $(grep -m1 'failed; first' "$all" || true)"
	((closed + reset + data == 0)) || warn "${LABEL[$name]}: at the end of the hold, $closed idle connections had been closed by the server, $reset reset, $data had unexpected bytes waiting"
	[[ ${verified%/*} == "${verified#*/}" && ${end_verified%/*} == "${end_verified#*/}" ]] ||
		warn "${LABEL[$name]}: idle connections failed the echo check: $verified after opening, $end_verified before closing"
	idle_row "$name" ok "$want" "$sum_conns" "$sum_failed" "$secs" "$connect_s" "$rss0" "$rss" "$hwm" "$rss_after" \
		"$workers" "$verified" "$end_verified" "$alive" "$closed" "$reset" "$data" "$((ticks1 - ticks0))" "$CLK_TCK" "$server_fd_limit" "$HOLD"
	stop_server
	wait_port_free || { log "port $PORT still busy after stopping ${LABEL[$name]}"; return 1; }
	return 0
}

# ---------------------------------------------------------------- run
for s in "${servers[@]}"; do
	use_port "$s"
	port_free || die "something already answers on $HOST:$PORT; stop it first (ss -ltnp | grep :$PORT)"
done
echo_tsv="$tmp/echo.tsv"
idle_tsv="$tmp/idle.tsv"
: >"$echo_tsv"
: >"$idle_tsv"
notes=()
failed=0
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the machine is with nothing of ours running: 2 s of /proc/stat.
a=$(cpu_all)
pause 2
b=$(cpu_all)
busy_before=$(awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
	t = (y[1] - x[1]) + (y[2] - x[2]); printf "%.2f", (t > 0) ? n * (y[1] - x[1]) / t : 0 }')
if awk -v o="$busy_before" 'BEGIN { exit !(o > 0.2) }'; then
	warn "the machine is already busy ($busy_before cores in use before any server started): the numbers will be noisy"
	notes+=("**the machine was busy before the run: $busy_before cores in use**")
fi
t_start=$SECONDS
if ((do_echo)); then
	start_echo_servers
	echo_rounds
	for s in "${echo_part[@]}"; do
		if [[ -n ${srv_pid[$s]:-} ]] && ! died "$s" "${srv_pid[$s]}"; then
			notes+=("${LABEL[$s]} (echo rounds, port ${port_of[$s]}): RSS $(awk -v k="$(proc_kib "${srv_pid[$s]}" VmRSS)" 'BEGIN {printf "%.1f", k / 1024}') MiB at the end of the rounds")
		fi
	done
	stop_servers
	for s in "${echo_part[@]}"; do
		use_port "$s"
		wait_port_free || die "port $PORT still busy after stopping ${LABEL[$s]}"
	done
fi
if ((do_idle)); then
	for s in "${servers[@]}"; do
		use_port "$s"
		server_cmd "$s"
		bench_idle "$s" "${scmd[@]}" || failed=1
	done
fi
elapsed=$((SECONDS - t_start))

# ---------------------------------------------------------------- report
skipped=$(skipped_list)
echo_took=""
rounds_word="$ROUNDS rounds"
((ROUNDS != 1)) || rounds_word="1 round"
((do_echo == 0)) || echo_took=" (echo rounds: $echo_secs s)"
{
	echo "## wasmloop WebSocket benchmark"
	echo
	echo "- date: $started; $elapsed s from the first server's start to the last one's stop${echo_took}, $SECONDS s in all (builds included)"
	echo "- machine: $(machine_line); load average before: $load_before; cores busy in the 2 s before: $busy_before"
	echo "- tools: $(go version 2>/dev/null | awk '{print $3}' || echo 'no go'), node $(node --version 2>/dev/null || echo 'absent'), ws $ws_version; load generator tests/bench/wsload (gobwas/ws), on the same cores as the server"
	echo "- servers, each on its own loopback port (wasmloop ws://$HOST:${port_of[wasmloop]}/, Node.js ws://$HOST:${port_of[node]}/): wasmloop \`run --workers $WORKERS${WASMLOOP_FLAGS:+ $WASMLOOP_FLAGS}\` samples/wsecho ($wasmloop_note); Node.js node/wsecho.js (ws $ws_version, one process)${skipped:+; skipped: $skipped}"
	if ((do_echo)); then
		echo "- echo, interleaved: the servers listen at once; $rounds_word, in each every server gets one wsload run, one server after the other, the order rotated by one each round (so with two servers it alternates); a run is $ECHO_CONNS fresh connections, each sending one ${SIZE}-byte masked binary message and waiting for its echo (checked byte for byte), $WARMUP warm-up then $DURATION measured. p50/p99 exact from every round trip of a window; server CPU = utime+stime of the server process (/proc/PID/stat, all threads) over exactly the measured window, CLK_TCK=$CLK_TCK; the other server sits idle meanwhile"
		echo "- per server: the median round (p25–p75) of each figure; errors and connections per worker summed over all rounds. wasmloop / Node: the median of the per-round ratios (both servers measured in the same round, seconds apart), with p25–p75 and min–max; the target applies to the median"
	fi
	if ((do_idle)); then
		echo "- idle: one server at a time, started afresh on its port after the echo servers were stopped; baseline RSS (VmRSS) after 2 plain HTTP requests, a 0.3 s echo over $((2 * WORKERS)) connections and 1 s settle; then CONNS=$CONNS requested idle connections from $SOURCES (descriptor limit: $fd_hard hard, per process, for server and client alike), held ${HOLD} s, RSS again; per connection = (held RSS − baseline) / connections. \"alive at end\": a non-blocking peek on every connection just before closing (open and quiet); \"echo check\": $VERIFY random connections echo a message after opening / before closing"
	fi
	for n in "${notes[@]}"; do echo "- $n"; done
	echo
	if ((do_echo)); then
		awk -f "$here/stats.awk" -f "$here/ws.awk" -v part=echo -v target="$TARGET_RATIO" -v rounds="$ROUNDS" "$echo_tsv"
		echo
	fi
	if ((do_idle)); then
		awk -f "$here/stats.awk" -f "$here/ws.awk" -v part=idle -v target_kib="$TARGET_KIB" "$idle_tsv"
	fi
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
log "done in $elapsed s ($SECONDS s with the builds)"
((failed == 0)) || die "at least one run failed; see the report and the messages above"
