#!/usr/bin/env bash
# Embedding benchmark: one Go net/http server on 127.0.0.1 whose handler runs a
# WebAssembly hello world three ways (and, for reference, answers in Go),
# measured interleaved in one run:
#
#   wasmloop  host.App.Handler() in front of samples/hello (NoPorts)
#   extism    an Extism plug-in (guests/extism-hello) from a sync.Pool of instances
#   httpwasm  http-wasm-host-go's net/http middleware (guests/httpwasm-hello)
#   native    no WebAssembly: a Go handler answers (the ceiling net/http and wrk leave)
#
#   bash tests/bench/embed/run.sh                               # from anywhere
#   ROUNDS=6 DURATION=5s OUT=results.md bash tests/bench/embed/run.sh
#
# Environment (all optional):
#   ROUNDS    rounds (default 6); each round runs every mode once, in an order
#             that changes from round to round (rotated, and reversed in every
#             other block of as many rounds as there are modes)
#   DURATION  measured wrk run per mode and round (default 5s; N, Ns, Nm or Nh)
#   WARMUP    wrk warm-up before each measured run, not counted (default 2s)
#   CONNS     wrk connections (default 64)
#   WORKERS   wasmloop's host.Config.Workers (default 2)
#   MODES     modes to run, space or comma separated (default "wasmloop extism httpwasm native")
#   PORT      the server's port on 127.0.0.1 (default 1337)
#   OUT       also write the Markdown report to this file
#   LOGDIR    keep server logs, raw wrk output and results.tsv here
#
# Each run starts the server afresh, checks that GET / answers 200, text/plain,
# "Hello World\n", warms it up with wrk, measures it with wrk (one thread,
# keep-alive) while reading the server's utime and stime from /proc/PID/stat
# before and after, and stops it. Before the rounds, the http-wasm guest SDK is
# built with the standard Go compiler and offered to http-wasm-host-go, to show
# whether it is usable (see README.md). The report (Markdown) goes to stdout;
# progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT=${PORT:-1337}
URL="http://$HOST:$PORT/"
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-2}
MODES=${MODES:-wasmloop extism httpwasm native}
OUT=${OUT:-}
LOGDIR=${LOGDIR:-}
# One wrk thread: on 2 shared cores it leaves the server as much CPU as it can
# while still loading it (budget about one core for it; it used 0.1-0.5 here).
WRK_THREADS=1
WRK_TIMEOUT=10s
START_TRIES=300 # tries 0.1 s apart (~30 s+): compiling a peer's guest at start-up takes a few seconds
STOP_TRIES=50   # tries 0.1 s apart (~5 s): time for a server to exit after SIGTERM
CHECK_TIMEOUT=120 # seconds for one -check run (compiles the guest)
OTHER_MAX=0.2   # cores of other load in a run above which the report counts it as disturbed

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bench=$root/tests/bench
LOG_TAG=embed
# shellcheck source=../lib.sh
. "$bench/lib.sh"
abs_path OUT LOGDIR

dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0 && warm_s > 0)) || die "DURATION and WARMUP must be positive"
for v in ROUNDS CONNS WORKERS PORT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((ROUNDS <= 100)) || die "ROUNDS must be at most 100"
((CONNS >= WRK_THREADS)) || die "CONNS ($CONNS) must be at least the wrk thread count ($WRK_THREADS)"

ALL_SERVERS=(wasmloop extism httpwasm native)
declare -A LABEL=([wasmloop]="wasmloop Handler" [extism]="Extism (pool)" [httpwasm]="http-wasm middleware" [native]="Go handler, no wasm (ceiling)")
declare -A GUEST=()
modes=()
for m in ${MODES//,/ }; do
	[[ -n ${LABEL[$m]:-} ]] || die "MODES: unknown mode '$m' (known: ${ALL_SERVERS[*]})"
	modes+=("$m")
done
((${#modes[@]} > 0)) || die "MODES is empty"

need go "install Go (https://go.dev/dl/)"
need curl "install it, e.g. apt-get install -y curl"
need wrk "install it, e.g. apt-get install -y wrk"
need getconf "part of libc (libc-bin)"
need timeout "part of coreutils"
CLK_TCK=$(getconf CLK_TCK)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-embed.XXXXXX")
install_cleanup

# ---------------------------------------------------------------- build
# Everything is built before anything is measured, so a build error shows at once.
wasip1() { GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared "$@"; }
log "building the server (tests/bench/embed)"
(cd "$here" && go build -o "$tmp/embed" .) || die "go build of tests/bench/embed failed"
log "building the guests (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared, standard Go $(go env GOVERSION))"
(cd "$root" && wasip1 -o "$tmp/hello.wasm" ./samples/hello) || die "building samples/hello failed"
(cd "$here" && wasip1 -o "$tmp/extism-hello.wasm" ./guests/extism-hello) || die "building guests/extism-hello failed"
(cd "$here" && wasip1 -o "$tmp/httpwasm-hello.wasm" ./guests/httpwasm-hello) || die "building guests/httpwasm-hello failed"
GUEST=([wasmloop]=$tmp/hello.wasm [extism]=$tmp/extism-hello.wasm [httpwasm]=$tmp/httpwasm-hello.wasm [native]=none)

# The http-wasm guest SDK (TinyGo) built with the standard compiler, as a reactor and as a
# command: does http-wasm-host-go accept it? The answer goes into the report.
sdk_result=""
for bm in c-shared exe; do
	if ! (cd "$here" && GOOS=wasip1 GOARCH=wasm go build -buildmode=$bm -o "$tmp/httpwasm-sdk-$bm.wasm" ./guests/httpwasm-sdk-hello) 2>"$tmp/sdk-$bm.log"; then
		sdk_result+="- \`-buildmode=$bm\`: does not build: $(head -c 300 "$tmp/sdk-$bm.log" | tr '\n' ' ')"$'\n'
		continue
	fi
	rc=0
	timeout "$CHECK_TIMEOUT" "$tmp/embed" -mode=httpwasm -wasm="$tmp/httpwasm-sdk-$bm.wasm" -check >"$tmp/sdk-$bm.log" 2>&1 || rc=$?
	if ((rc == 0)); then
		sdk_result+="- \`-buildmode=$bm\`: builds, and http-wasm-host-go serves it: $(tail -n 1 "$tmp/sdk-$bm.log")"$'\n'
	else
		sdk_result+="- \`-buildmode=$bm\`: builds, but http-wasm-host-go refuses it: \`$(grep -v '^$' "$tmp/sdk-$bm.log" | tail -n 1)\`"$'\n'
	fi
done
log "http-wasm guest SDK under the standard compiler:"$'\n'"$sdk_result"

# Each mode answers one request in-process before any socket is opened.
for m in "${modes[@]}"; do
	timeout "$CHECK_TIMEOUT" "$tmp/embed" -mode="$m" -wasm="${GUEST[$m]}" -workers="$WORKERS" -check >"$tmp/$m.check.log" 2>&1 ||
		{ sed 's/^/    /' "$tmp/$m.check.log" >&2; die "-mode=$m -check failed"; }
	log "$m: $(tail -n 1 "$tmp/$m.check.log")"
done

# ---------------------------------------------------------------- helpers
# user_sys_ticks PID: "utime stime" of PID in clock ticks (all threads), with
# reaped children's share added (the server has none).
user_sys_ticks() {
	local line rest f
	read -r line <"/proc/$1/stat" || return 1
	rest=${line##*) } # field 2 (comm) may hold spaces and ')'
	read -r -a f <<<"$rest"
	# rest starts at field 3 (state): utime=14 stime=15 cutime=16 cstime=17
	echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}

run_wrk() {
	run_child $(($1 + 30)) "$2" wrk -t "$WRK_THREADS" -c "$CONNS" -d "${1}s" --timeout "$WRK_TIMEOUT" \
		--latency -s "$bench/report.lua" "$URL"
}

# row NAME ROUND POSITION STATUS [FIELDS...]: one line of results.tsv.
row() {
	local IFS=$'\t'
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${LABEL[$1]}" "$2" "$3" "${*:4}" >>"$results"
}

# server_stat LOG KEY: a number the server printed at exit ("instances created: N", ...).
server_stat() { sed -n "s/.*$2: \([0-9]*\).*/\1/p" "$1" | tail -n 1; }

# run_once NAME ROUND POSITION: start, check, warm up, measure, stop; one line of results.tsv.
run_once() {
	local name=$1 r=$2 pos=$3 f us0 us1 all0 all1 rc=0 status=ok slog
	f="$tmp/$name.r$r.wrk.log"
	slog="$tmp/$name.server.log"
	if ! start_server "$name" "$tmp/embed" -mode="$name" -wasm="${GUEST[$name]}" -workers="$WORKERS" -addr="$HOST:$PORT"; then
		stop_server
		row "$name" "$r" "$pos" "did not start"
		return 1
	fi
	curl -s --max-time 5 -D "$tmp/$name.head" -o "$tmp/$name.body" "$URL" || true
	if ! printf 'Hello World\n' | cmp -s - "$tmp/$name.body" || ! grep -qi '^content-type: text/plain' "$tmp/$name.head"; then
		status="wrong answer"
		log "round $r, $name: GET / answered [$(head -c 300 "$tmp/$name.head" "$tmp/$name.body" | od -An -c | tr -s ' \n' ' ')]"
	elif ! run_wrk "$warm_s" "$tmp/$name.r$r.warmup.log"; then
		status="wrk failed (warm-up)"
	else
		log "round $r, $name: measuring ${dur_s}s, $CONNS connections"
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
	stop_server
	cp "$slog" "$tmp/$name.r$r.server.log" 2>/dev/null || true
	wait_port_free || die "port $PORT still busy after stopping $name"
	if [[ $status != ok ]]; then
		log "round $r, $name: $status; server output:"
		tail -n 20 "$slog" | sed 's/^/    /' >&2 || true
		[[ ! -s $f ]] || sed 's/^/    /' "$f" >&2
		row "$name" "$r" "$pos" "$status"
		return 1
	fi
	local e errors=0 inst gcs
	for e in connect read write timeout status; do
		errors=$((errors + $(wrk_field "$f" "$e")))
	done
	((errors == 0)) || warn "round $r, $name: wrk counted $errors errors; the run is not counted"
	inst=$(server_stat "$slog" "instances created")
	gcs=$(server_stat "$slog" "garbage collections")
	# requests duration_us p99_us errors utime stime wrk_cpu_s machine_busy machine_idle bytes instances gcs
	row "$name" "$r" "$pos" ok "$(wrk_field "$f" requests)" "$(wrk_field "$f" duration_us)" "$(wrk_field "$f" p99_us)" \
		"$errors" $((${us1% *} - ${us0% *})) $((${us1#* } - ${us0#* })) "$(cat "$f.cpu")" \
		$((${all1% *} - ${all0% *})) $((${all1#* } - ${all0#* })) "$(wrk_field "$f" bytes)" "${inst:--}" "${gcs:--}"
	log "round $r, $name: $(awk -v n="$(wrk_field "$f" requests)" -v d="$(wrk_field "$f" duration_us)" \
		-v u=$((${us1% *} - ${us0% *})) -v s=$((${us1#* } - ${us0#* })) -v t="$CLK_TCK" \
		'BEGIN { printf "%.0f req/s, server CPU %.1f µs/req (user %.1f, system %.1f)", n / (d / 1e6), 1e6 * (u + s) / t / n, 1e6 * u / t / n, 1e6 * s / t / n }')"
	((errors == 0))
}

# order R: the modes in round R's order: rotated by R, reversed in every other block of
# as many rounds as there are modes (for 3 modes, rounds 0-5 run all 6 orders).
order() {
	local r=$1 n=${#modes[@]} i out=()
	for ((i = 0; i < n; i++)); do out+=("${modes[(i + r) % n]}"); done
	if (((r / n) % 2 == 1)); then
		local rev=()
		for ((i = n - 1; i >= 0; i--)); do rev+=("${out[i]}"); done
		out=("${rev[@]}")
	fi
	echo "${out[@]}"
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
	pos=0
	for s in $(order "$r"); do
		pos=$((pos + 1))
		run_once "$s" "$r" "$pos" || failed=1
	done
done
elapsed=$((SECONDS - t0))

# ---------------------------------------------------------------- report
wasmloop_rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
wasmloop_dirty=$(cd "$root" && git status --porcelain --untracked-files=no -- host abi guest-sdk samples/hello 2>/dev/null | wc -l)
{
	echo "## Embedding benchmark: wasmloop Handler vs Extism vs http-wasm (hello world)"
	echo
	echo "- date: $started; $elapsed s for $ROUNDS rounds; load average before: $load_before"
	echo "- machine: $(machine_line). **wrk runs on the same 2 shared cores as the server** (its share is the \"wrk cores busy\" column), and so does anything else on the box (\"other load\"): req/s is what the server did with the CPU left to it, and moves with that; server CPU per request is the efficiency figure"
	echo "- tools: $(go env GOVERSION), $(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}'); wasmloop at $wasmloop_rev$( ((wasmloop_dirty == 0)) || echo " with $wasmloop_dirty uncommitted changed files under host/, abi/, guest-sdk/, samples/hello"); peers: $(cd "$here" && go list -m -f '{{.Path}} {{.Version}}' github.com/extism/go-sdk github.com/extism/go-pdk github.com/http-wasm/http-wasm-host-go github.com/tetratelabs/wazero | tr '\n' ';' | sed 's/;$//; s/;/, /g')"
	echo "- server: one Go binary (main.go), net/http on $URL, default GOMAXPROCS; -mode=wasmloop: \`host.Load(Config{Workers: $WORKERS, NoPorts: true, Env: PORT=0})\` + \`app.Handler()\` with samples/hello; -mode=extism: \`sync.Pool\` of \`*extism.Plugin\` from one \`CompiledPlugin\` (WASI on, no timeout), \`CallWithContext(r.Context(), \"hello\", nil)\`; -mode=httpwasm: \`nethttp.NewMiddleware\` (its own \`sync.Pool\` of guests, default wazero runtime) with \`WithStartFunctions(\"_initialize\")\`"
	echo "- guests: standard Go, GOOS=wasip1 GOARCH=wasm -buildmode=c-shared: samples/hello (wasmloop SDK), guests/extism-hello (Extism Go PDK, go:wasmexport), guests/httpwasm-hello (http-wasm ABI by hand: go:wasmimport/go:wasmexport)"
	echo "- interleaved: $ROUNDS rounds, each runs every mode once, started afresh, in an order that changes every round; per run wrk -t $WRK_THREADS -c $CONNS, keep-alive, $WARMUP warm-up then $DURATION measured"
	echo "- CPU: utime and stime of the server process (all threads) from /proc/PID/stat over the measured run, per request (CLK_TCK=$CLK_TCK: one tick is $((1000000 / CLK_TCK)) µs, so a 5 s run of ~20k req/s resolves ~0.1 µs/req); other load: machine busy CPU (/proc/stat) less server and wrk, in cores; a run above $OTHER_MAX counts as disturbed"
	echo "- a run that failed or in which wrk counted errors is left out, and so is its round's ratios"
	echo
	echo "### http-wasm guest SDK (github.com/http-wasm/http-wasm-guest-tinygo) under the standard Go compiler"
	echo
	printf '%s' "$sdk_result"
	echo
	awk -f "$bench/stats.awk" -f "$here/report.awk" -v tck="$CLK_TCK" -v other_max="$OTHER_MAX" -v modes="${modes[*]}" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
((failed == 0)) || die "at least one run failed; see the messages above"
