# shellcheck shell=bash
# shellcheck disable=SC2154 # tmp, HOST, PORT, URL, LABEL... are the calling script's globals
# Shared helpers of the benchmark harnesses (run.sh, stream.sh). Source it; it
# only defines functions. They use these globals of the calling script:
#
#   HOST PORT URL      where every server under test listens (loopback only)
#   READY_URL          optional: the URL start_server polls (default: URL)
#   START_TRIES        tries 0.1 s apart for a server to answer its first request
#   STOP_TRIES         tries 0.1 s apart for a server to exit after SIGTERM
#   LABEL              associative array: server name -> display name
#   ALL_SERVERS        array of every known server name, in run order
#   LOG_TAG            prefix of progress lines (default "bench")
#   LOGDIR             optional: where cleanup keeps *.log and *.tsv from $tmp
#   tmp                the script's scratch directory (removed on exit)
#   server_pid         the running server (set by start_server)
#   child_pid          the running load generator (set by run_child)

log() { printf '[%s] %s\n' "${LOG_TAG:-bench}" "$*" >&2; }
warn() { printf '\n[%s] WARNING: %s\n\n' "${LOG_TAG:-bench}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-bench}" "$*" >&2; exit 1; }

# seconds DURATION: whole seconds of N, Ns, Nm or Nh.
seconds() {
	local d=$1
	[[ $d =~ ^([0-9]+)([smh]?)$ ]] || die "bad duration '$d' (want e.g. 10s, 1m)"
	local n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	m) n=$((n * 60)) ;;
	h) n=$((n * 3600)) ;;
	esac
	echo "$n"
}

# need TOOL HINT: fail unless TOOL is on PATH.
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

# abs_path VAR...: make each named variable absolute (relative to $PWD) unless empty.
abs_path() {
	local v
	for v in "$@"; do
		[[ -z ${!v} || ${!v} == /* ]] || printf -v "$v" '%s' "$PWD/${!v}"
	done
}

# select_servers SKIP: sets the globals `skip` (name -> 1) and `servers` (what
# runs, in ALL_SERVERS order) from a space- or comma-separated SKIP list.
select_servers() {
	local s
	declare -gA skip=()
	servers=()
	for s in ${1//,/ }; do
		[[ -n ${LABEL[$s]:-} ]] || die "SKIP: unknown server '$s' (known: ${ALL_SERVERS[*]})"
		skip[$s]=1
	done
	for s in "${ALL_SERVERS[@]}"; do
		[[ -n ${skip[$s]:-} ]] || servers+=("$s")
	done
	((${#servers[@]} > 0)) || die "SKIP leaves no server to run"
}
wants() { [[ -z ${skip[$1]:-} ]]; }

# skipped_list: the display names of the skipped servers, comma separated.
skipped_list() {
	local s out=""
	for s in "${ALL_SERVERS[@]}"; do
		wants "$s" || out+="${out:+, }${LABEL[$s]}"
	done
	echo "$out"
}

# ---------------------------------------------------------------- cleanup
# stop_server sends SIGTERM, waits a bounded time, then SIGKILL; always reaps.
stop_server() {
	local pid=$server_pid i
	[[ -n $pid ]] || return 0
	server_pid=""
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < STOP_TRIES; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "server $pid ignored SIGTERM for $((STOP_TRIES / 10))s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

# cleanup (the EXIT trap): stop the load generator and the server, keep the
# logs if asked, remove $tmp, and exit with the script's status.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n ${child_pid:-} ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true # timeout passes it on to its command
		wait "$child_pid" 2>/dev/null || true
	fi
	stop_server
	if [[ -n ${LOGDIR:-} ]]; then
		if mkdir -p "$LOGDIR"; then
			cp "$tmp"/*.log "$tmp"/*.tsv "$LOGDIR"/ 2>/dev/null || true
		fi
	fi
	rm -rf "$tmp"
	exit "$rc"
}

# install_cleanup: stop everything on exit, Ctrl-C or TERM.
install_cleanup() {
	server_pid=""
	child_pid=""
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# ---------------------------------------------------------------- servers
# port_free: nothing answers on $HOST:$PORT (curl exit 7 = connection refused).
port_free() {
	local rc=0
	curl -s -o /dev/null --max-time 1 "$URL" || rc=$?
	((rc == 7))
}

# wait_port_free: bounded wait for the previous server's socket to go away.
wait_port_free() {
	local i
	for ((i = 0; i < STOP_TRIES; i++)); do
		port_free && return 0
		sleep 0.1
	done
	return 1
}

# start_server NAME CMD...: start, remember the pid, wait (bounded) for it to
# answer READY_URL (default URL) with any HTTP response. The server's output
# goes to $tmp/NAME.server.log.
start_server() {
	local name=$1 ready=${READY_URL:-$URL} i
	shift
	port_free || { log "something already answers on $HOST:$PORT; stop it first"; return 1; }
	log "starting ${LABEL[$name]}: $*"
	# env -u GOMAXPROCS: every server gets the default; env execs, so $! is the server.
	env -u GOMAXPROCS "$@" >"$tmp/$name.server.log" 2>&1 &
	server_pid=$!
	for ((i = 0; i < START_TRIES; i++)); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			log "${LABEL[$name]} exited during start-up; its output:"
			sed 's/^/    /' "$tmp/$name.server.log" >&2 || true
			server_pid=""
			return 1
		fi
		if curl -s -o /dev/null --max-time 1 "$ready"; then
			log "${LABEL[$name]} is up (pid $server_pid): $(head -n 1 "$tmp/$name.server.log")"
			return 0
		fi
		sleep 0.1
	done
	log "${LABEL[$name]} did not answer on $ready within $((START_TRIES / 10))s"
	return 1
}

# ---------------------------------------------------------------- measuring
# run_child SECONDS FILE CMD...: run CMD under `timeout SECONDS`, its stdout and
# stderr to FILE, and write its CPU seconds (user+system, 2 decimals) to
# FILE.cpu; returns CMD's exit status (124 on timeout).
# CMD runs in the background and the shell waits for it with `wait`: a trapped
# signal (Ctrl-C, TERM) interrupts `wait` at once, so the EXIT trap stops the
# server and CMD, instead of bash deferring the signal until CMD is done.
# CMD's CPU comes from the `times` builtin (CPU of reaped children), read just
# before and after; nothing else is reaped in between.
run_child() {
	local secs=$1 file=$2 rc=0
	shift 2
	timeout --kill-after=5 "$secs" "$@" >"$file" 2>&1 &
	child_pid=$!
	times >"$file.t0"
	wait "$child_pid" || rc=$?
	times >"$file.t1"
	child_pid=""
	# `times` prints two lines, shell then children: "0m1.250s 0m0.310s".
	awk 'function s(t) { split(t, a, "m"); return a[1] * 60 + a[2] }
		FNR == 2 { v = s($1) + s($2); if (FILENAME ~ /t0$/) t0 = v; else t1 = v }
		END { printf "%.2f\n", t1 - t0 }' "$file.t0" "$file.t1" >"$file.cpu"
	return "$rc"
}

# cpu_ticks PID: utime+stime+cutime+cstime, in clock ticks, summed over PID
# and all its live descendants. /proc/PID/stat of a process already totals all
# of its threads (including threads that have exited), so the threads need no
# separate sum; cutime/cstime hold descendants that have exited and been reaped.
cpu_ticks() {
	local root_pid=$1 line rest f p total=0
	local -A kids=()
	for p in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$p" || continue
		rest=${line##*) } # field 2 (comm) may hold spaces and ')'
		read -r -a f <<<"$rest"
		p=${p#/proc/}
		kids[${f[1]}]+=" ${p%/stat}"
	done
	local -a queue=("$root_pid")
	local i=0
	while ((i < ${#queue[@]})); do
		p=${queue[i]}
		i=$((i + 1))
		if read -r line 2>/dev/null <"/proc/$p/stat"; then
			rest=${line##*) }
			read -r -a f <<<"$rest"
			# rest starts at field 3 (state): utime=14 stime=15 cutime=16 cstime=17
			total=$((total + f[11] + f[12] + f[13] + f[14]))
		fi
		# shellcheck disable=SC2206 # word splitting of the pid list is intended
		queue+=(${kids[$p]:-})
		((i < 100000)) || break
	done
	echo "$total"
}

# cpu_ticks_split PID: "user system" clock ticks (utime+cutime, stime+cstime), summed over
# PID and all its live descendants, as cpu_ticks (which gives their sum) counts them.
cpu_ticks_split() {
	local root_pid=$1 line rest f p user=0 sys=0
	local -A kids=()
	for p in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$p" || continue
		rest=${line##*) }
		read -r -a f <<<"$rest"
		p=${p#/proc/}
		kids[${f[1]}]+=" ${p%/stat}"
	done
	local -a queue=("$root_pid")
	local i=0
	while ((i < ${#queue[@]})); do
		p=${queue[i]}
		i=$((i + 1))
		if read -r line 2>/dev/null <"/proc/$p/stat"; then
			rest=${line##*) }
			read -r -a f <<<"$rest"
			user=$((user + f[11] + f[13]))
			sys=$((sys + f[12] + f[14]))
		fi
		# shellcheck disable=SC2206 # word splitting of the pid list is intended
		queue+=(${kids[$p]:-})
		((i < 100000)) || break
	done
	echo "$user $sys"
}

# cpu_all: "busy idle" ticks of the whole machine, from /proc/stat.
cpu_all() {
	local _cpu user nice sys idle iowait irq softirq steal _rest
	read -r _cpu user nice sys idle iowait irq softirq steal _rest </proc/stat
	echo "$((user + nice + sys + irq + softirq + steal)) $((idle + iowait))"
}

# ---------------------------------------------------------------- report
# machine_line: "N CPUs (N online), model, kernel", for the report header.
machine_line() {
	local cpu_model
	cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
	[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ {print $2; exit}' || true)
	echo "$(nproc) CPUs ($(getconf _NPROCESSORS_ONLN) online), ${cpu_model:-unknown CPU}, $(uname -sr)"
}

# build_wasmloop SAMPLE PREBUILT VAR: sets wasmloop_bin (built from this tree, or
# $WASMLOOP_BIN), guest_wasm (samples/SAMPLE built for wasip1, or the prebuilt file PREBUILT
# named by the variable VAR) and wasmloop_note. Builds before anything is measured, so a build
# error shows at once.
build_wasmloop() {
	local sample=$1 prebuilt=$2 var=$3
	wasmloop_bin="$tmp/wasmloop"
	guest_wasm="$tmp/$sample.wasm"
	wasmloop_note="built from this tree"
	if [[ -n $WASMLOOP_BIN ]]; then
		[[ -x $WASMLOOP_BIN ]] || die "WASMLOOP_BIN=$WASMLOOP_BIN is not an executable"
		wasmloop_bin=$WASMLOOP_BIN
		wasmloop_note="CLI from WASMLOOP_BIN"
	else
		log "building cmd/wasmloop"
		go build -o "$wasmloop_bin" ./cmd/wasmloop ||
			die "go build ./cmd/wasmloop failed (run with SKIP=wasmloop to benchmark the others)"
	fi
	if [[ -n $prebuilt ]]; then
		[[ -f $prebuilt ]] || die "$var=$prebuilt does not exist"
		guest_wasm=$prebuilt
		wasmloop_note+=", guest from $var"
	else
		[[ -f samples/$sample/main.go ]] || die "samples/$sample/main.go does not exist: run with SKIP=wasmloop, or $var=..."
		log "building samples/$sample (GOOS=wasip1 GOARCH=wasm, c-shared)"
		GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$guest_wasm" "./samples/$sample" ||
			die "building samples/$sample for wasip1 failed (run with SKIP=wasmloop to benchmark the others)"
	fi
}

# select_and_check: the servers to run (all three less $SKIP) and the tools every harness
# needs; sets CLK_TCK for the CPU accounting. Harness-specific tools are checked by the caller.
select_and_check() {
	ALL_SERVERS=(wasmloop node nethttp)
	declare -gA LABEL=([wasmloop]="wasmloop" [node]="Node.js" [nethttp]="net/http")
	select_servers "${SKIP:-}" # SKIP is the caller's setting
	need curl "install it, e.g. apt-get install -y curl"
	need getconf "part of libc (libc-bin)"
	need timeout "part of coreutils"
	if wants wasmloop || wants nethttp; then need go "install Go (https://go.dev/dl/)"; fi
	if wants node; then need node "install Node.js, or SKIP=node"; fi
	CLK_TCK=$(getconf CLK_TCK)
	[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
}

# wrk_field FILE KEY: a value from report.lua's WRKBENCH line.
wrk_field() {
	awk -v k="$2" '$1 == "WRKBENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}
