#!/usr/bin/env bash
# wasmloop streaming benchmark: download and upload throughput, peak RSS and
# CPU per GiB, wasmloop vs Node.js vs Go net/http.
#
#   bash tests/bench/stream.sh                   # from the repo root
#   SIZES="1m:200 100m:3" WORKERS=2 OUT=stream.md SKIP=wasmloop bash tests/bench/stream.sh
#
# Environment (all optional):
#   SIZES     transfer sizes, each SIZE[:COUNT]; SIZE in bytes with an optional
#             k, m or g suffix (KiB, MiB, GiB); COUNT measured transfers
#             (default 3). Default "1m:200 100m:3".
#   WARMUP    unmeasured transfers before each measured series (default 1)
#   WORKERS   wasmloop --workers (default 2)
#   WASMLOOP_FLAGS
#             more flags for `wasmloop run` (default none), e.g. "--body-limit 128m"
#   RSS_TARGET_MIB
#             wasmloop's peak RSS target at the largest size (default 64)
#   XFER_TIMEOUT
#             longest a single transfer may take, in seconds (default 120)
#   OUT       also write the Markdown report to this file
#   SKIP      servers not to run, space or comma separated: wasmloop node nethttp
#   LOGDIR    keep server logs, curl output and results.tsv in this directory
#   WASMLOOP_BIN, STREAM_WASM
#             use this prebuilt wasmloop CLI / stream guest instead of building
#             ./cmd/wasmloop / ./samples/stream
#
# Each server is started in turn on 127.0.0.1:1337 and checked (a 1 MiB
# download has the right bytes and a Content-Length, the answer of POST
# /upload to a 1 MiB upload has the right count and sha256, that of POST
# /count the right count). Then, for each size, curl downloads from GET
# /download?size=N and uploads to POST /count, COUNT transfers in a row on one
# keep-alive connection, every one checked (HTTP 200, all bytes, and for
# uploads the right count). Uploads are measured against /count, which only
# counts the bytes, not /upload: a wasm guest's sha256 (Go's portable code,
# ~30 MiB/s) would be measured instead of the server's body streaming. The
# server is then killed.
# The report (Markdown) goes to stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT=1337      # every server under test listens here
BASE="http://$HOST:$PORT"
URL="$BASE/"                      # probed to see whether the port is free
READY_URL="$BASE/download?size=1" # polled until a new server answers
# 1 MiB × 200: 50 transfers at ~1 GiB/s last ~50 ms, 5 CPU clock ticks; 200
# make the series (and the CPU figure) long enough to mean something.
SIZES=${SIZES:-1m:200 100m:3}
WARMUP=${WARMUP:-1}
WORKERS=${WORKERS:-2}
WASMLOOP_FLAGS=${WASMLOOP_FLAGS:-}
RSS_TARGET_MIB=${RSS_TARGET_MIB:-64}
XFER_TIMEOUT=${XFER_TIMEOUT:-120}
OUT=${OUT:-}
SKIP=${SKIP:-}
LOGDIR=${LOGDIR:-}
WASMLOOP_BIN=${WASMLOOP_BIN:-}
STREAM_WASM=${STREAM_WASM:-}
TARGET_TPUT=1.0 # wasmloop throughput / net/http throughput, at least
# A transfer slower than STALL_BPS bytes/s for STALL_SECS seconds is aborted
# (curl --speed-limit/--speed-time): a stalled server fails fast.
STALL_BPS=1024
STALL_SECS=15
# A series of this many transfers or more is summarised by its aggregate
# throughput (all bytes / all transfer time); a shorter one by the median of
# its per-transfer throughputs.
AGGREGATE_FROM=10
START_TRIES=300 # tries 0.1 s apart (~30 s+): time for a server to answer its first request
STOP_TRIES=50   # tries 0.1 s apart (~5 s): time for a server to exit after SIGTERM
MiB=1048576
CHECK_SIZE=$MiB # the correctness checks use 1 MiB transfers

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=stream
# shellcheck source=./lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
# OUT, LOGDIR and the prebuilt files are relative to where the script was started.
abs_path OUT LOGDIR WASMLOOP_BIN STREAM_WASM
cd "$root"

[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, got '$WORKERS'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, got '$WARMUP'"
[[ $RSS_TARGET_MIB =~ ^[1-9][0-9]*$ ]] || die "RSS_TARGET_MIB must be a positive integer, got '$RSS_TARGET_MIB'"
[[ $XFER_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "XFER_TIMEOUT must be a positive number of seconds, got '$XFER_TIMEOUT'"
read -r -a wasmloop_flags <<<"$WASMLOOP_FLAGS"

# size_label BYTES: "1 MiB", "64 KiB", "1000 B".
size_label() {
	local b=$1
	if ((b > 0 && b % MiB == 0)); then
		echo "$((b / MiB)) MiB"
	elif ((b > 0 && b % 1024 == 0)); then
		echo "$((b / 1024)) KiB"
	else
		echo "$b B"
	fi
}

# SIZES -> size_bytes[], size_count[]
size_bytes=()
size_count=()
read -r -a size_specs <<<"$SIZES"
((${#size_specs[@]} > 0)) || die "SIZES is empty"
for spec in "${size_specs[@]}"; do
	[[ $spec =~ ^([0-9]+)([kKmMgG]?)(:([0-9]+))?$ ]] ||
		die "SIZES: bad entry '$spec' (want SIZE[:COUNT], e.g. 1m:50 or 100m:3)"
	b=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	k | K) b=$((b * 1024)) ;;
	m | M) b=$((b * MiB)) ;;
	g | G) b=$((b * 1024 * MiB)) ;;
	esac
	n=${BASH_REMATCH[4]:-3}
	((b > 0)) || die "SIZES: size must be positive in '$spec'"
	((n > 0)) || die "SIZES: count must be positive in '$spec'"
	size_bytes+=("$b")
	size_count+=("$n")
done
largest=0
smallest_series=0 # bytes in the smallest measured series
for i in "${!size_bytes[@]}"; do
	b=${size_bytes[i]}
	((b > largest)) && largest=$b
	t=$((b * size_count[i]))
	((smallest_series == 0 || t < smallest_series)) && smallest_series=$t
done

# ---------------------------------------------------------------- servers and tools
select_and_check
need sha256sum "part of coreutils"
# %{exitcode} in --write-out needs curl 7.75.
curl_ver=$(curl --version | awk 'NR == 1 {print $2}')
printf '%s\n7.75.0\n' "$curl_ver" | sort -C -V -r ||
	die "curl $curl_ver is too old: need 7.75 or later (for --write-out %{exitcode})"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-stream.XXXXXX")
install_cleanup

# ---------------------------------------------------------------- inputs
node_script="$here/node/stream.js"
if wants node; then [[ -f $node_script ]] || die "$node_script is missing"; fi

# Unset when wasmloop is skipped; the report still names them.
wasmloop_bin="" stream_wasm="" wasmloop_note="skipped"
if wants wasmloop; then
	build_wasmloop stream "$STREAM_WASM" STREAM_WASM
	stream_wasm=$guest_wasm
fi
if wants nethttp; then
	log "building tests/bench/nethttp-stream"
	go build -o "$tmp/nethttp-stream" ./tests/bench/nethttp-stream || die "go build ./tests/bench/nethttp-stream failed"
fi

# Upload bodies: random bytes (nothing compressible, nothing repetitive), one
# file per size. The measured uploads go to /count, whose answer is "<count>";
# the check's upload also goes to /upload, whose answer is "<count> <hex sha256>".
declare -A up_file=()
for b in "$CHECK_SIZE" "${size_bytes[@]}"; do
	[[ -z ${up_file[$b]:-} ]] || continue
	up_file[$b]="$tmp/upload.$b"
	head -c "$b" /dev/urandom >"${up_file[$b]}"
done
check_hash_answer="$CHECK_SIZE $(sha256sum <"${up_file[$CHECK_SIZE]}" | awk '{print $1}')"
# The expected bytes of a CHECK_SIZE download: byte i = i % 251.
for ((i = 0; i < 251; i++)); do
	# shellcheck disable=SC2059 # the format is built on purpose: one byte, \ooo
	printf "\\$(printf '%03o' "$i")"
done >"$tmp/period"
cp "$tmp/period" "$tmp/expected.download"
while (($(stat -c %s "$tmp/expected.download") < CHECK_SIZE)); do
	cat "$tmp/expected.download" "$tmp/expected.download" >"$tmp/expected.tmp"
	mv "$tmp/expected.tmp" "$tmp/expected.download"
done
head -c "$CHECK_SIZE" "$tmp/expected.download" >"$tmp/expected.tmp"
mv "$tmp/expected.tmp" "$tmp/expected.download"

# ---------------------------------------------------------------- helpers
# proc_kib PID FIELD: a "FIELD: N kB" value of /proc/PID/status (VmHWM, VmRSS).
proc_kib() {
	awk -v f="$2:" '$1 == f {print $2; found = 1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

# snap VAR: store "seconds process steal" in VAR, without forking: the wall
# clock (with microseconds) and, from /proc/stat, user+nice+system ticks (CPU
# time of all processes; softirq and irq not included) and steal ticks (time
# the hypervisor gave to someone else).
snap() {
	local _cpu user nice sys _idle _iowait _irq _softirq steal _rest t
	read -r _cpu user nice sys _idle _iowait _irq _softirq steal _rest </proc/stat
	t=${EPOCHREALTIME:-}
	[[ -n $t ]] || t=$(date +%s.%N)
	printf -v "$1" '%s %s %s' "${t/,/.}" "$((user + nice + sys))" "$steal"
}

# other_cores A B SERVER_TICKS CLIENT_SECONDS: cores used between snaps A and B
# by every process but the server and the client, plus steal.
other_cores() {
	awk -v a="$1" -v b="$2" -v srv="$3" -v cl="$4" -v tck="$CLK_TCK" 'BEGIN {
		split(a, x, " "); split(b, y, " "); wall = y[1] - x[1]
		o = ((y[2] - x[2] + y[3] - x[3] - srv) / tck - cl) / (wall > 0 ? wall : 1)
		printf "%.2f", (o > 0) ? o : 0 }'
}

# reset_peak PID: set the process's peak RSS (VmHWM) back to its current RSS
# (Linux >= 4.0: write 5 to /proc/PID/clear_refs). Fails if not allowed.
reset_peak() {
	{ echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null
}

# curl_cmd DIR SIZE COUNT PREFIX: the curl command line (into the array `cmd`)
# for COUNT transfers of SIZE bytes, in a row, on one keep-alive connection.
# Every transfer prints one line "exitcode http_code bytes bytes/s seconds";
# upload answers go to PREFIX.1, PREFIX.2, ... Uploads go to POST /count (the
# bytes are only counted), so that the server's per-byte work is not measured.
curl_cmd() {
	local dir=$1 size=$2 count=$3 prefix=$4 i
	cmd=(curl -s -S --max-time "$XFER_TIMEOUT" --speed-limit "$STALL_BPS" --speed-time "$STALL_SECS")
	if [[ $dir == download ]]; then
		cmd+=(-w '%{exitcode} %{http_code} %{size_download} %{speed_download} %{time_total}\n')
		for ((i = 1; i <= count; i++)); do
			cmd+=(-o /dev/null "$BASE/download?size=$size")
		done
	else
		# -T streams the file (curl never holds it whole); -X POST, as -T alone
		# would PUT; "Expect:" turns off curl's Expect: 100-continue, whose wait
		# for the interim answer is not what is measured here.
		cmd+=(-X POST -H 'Expect:' -H 'Content-Type: application/octet-stream')
		cmd+=(-w '%{exitcode} %{http_code} %{size_upload} %{speed_upload} %{time_total}\n')
		for ((i = 1; i <= count; i++)); do
			cmd+=(-T "${up_file[$size]}" -o "$prefix.$i" "$BASE/count")
		done
	fi
}

# transfers DIR SIZE COUNT FILE: run COUNT checked transfers; the curl lines go
# to FILE. Sets xfer_status to "ok" or what went wrong, and xfer_a / xfer_b to
# snaps (see snap) just before and after curl ran. (Not meant for $(...): curl
# must run as a child of the main shell, so the EXIT trap can stop it.)
xfer_a="" xfer_b="" xfer_status=""
transfers() {
	local dir=$1 size=$2 count=$3 file=$4 rc=0 bad i
	curl_cmd "$dir" "$size" "$count" "$file.answer"
	snap xfer_a
	run_child $((count * XFER_TIMEOUT + 30)) "$file" "${cmd[@]}" || rc=$?
	snap xfer_b
	# Every transfer: curl exit 0, HTTP 200, all bytes moved.
	bad=$(awk -v n="$size" -v want="$count" '
		NF == 5 && $1 ~ /^[0-9]+$/ { k++; if (!first && ($1 != 0 || $2 != 200 || $3 != n)) { first = sprintf("transfer %d: curl exit %s, HTTP %s, %s of %s bytes", k, $1, $2, $3, n) } ; if ($1 != 0 || $2 != 200 || $3 != n) b++ }
		END {
			if (k != want) { printf "%d of %d transfers reported", k, want; exit }
			if (b) printf "%d of %d transfers failed (first: %s)", b, want, first
		}' "$file")
	if [[ -z $bad && $rc -ne 0 ]]; then
		bad="curl exit $rc"
		((rc != 124)) || bad="timed out"
	fi
	# Every upload: the answer of /count is the exact byte count.
	if [[ -z $bad && $dir == upload ]]; then
		for ((i = 1; i <= count; i++)); do
			if ! printf '%s\n' "$size" | cmp -s - "$file.answer.$i"; then
				bad="transfer $i: wrong answer '$(head -c 200 "$file.answer.$i" 2>/dev/null | tr -d '\n' || true)' from /count (want '$size')"
				break
			fi
		done
	fi
	rm -f "$file.answer".*
	if [[ -n $bad ]]; then
		log "$dir of $(size_label "$size"): $bad; curl said:"
		grep -v '^[0-9]* [0-9]* [0-9]* [0-9.]* [0-9.]*$' "$file" | head -n 5 | sed 's/^/    /' >&2 || true
		xfer_status=$bad
	else
		xfer_status=ok
	fi
}

# check_server NAME: the correctness checks; sets ok_download / ok_upload.
# The upload check hashes: /upload must answer the count and sha256 of the
# body (so every byte arrived, in order); /count, which the measured uploads
# use, must answer the count.
check_server() {
	local name=$1 code answer ccode canswer
	ok_download=1
	ok_upload=1
	code=$(curl -s --max-time 30 -D "$tmp/$name.download.headers" -o "$tmp/$name.download.body" \
		-w '%{http_code}' "$BASE/download?size=$CHECK_SIZE") || code="curl-failed"
	{
		echo "--- ${LABEL[$name]}: GET /download?size=$CHECK_SIZE response headers"
		tr -d '\r' <"$tmp/$name.download.headers" 2>/dev/null || true
	} >&2
	if [[ $code != 200 ]] || ! cmp -s "$tmp/expected.download" "$tmp/$name.download.body"; then
		warn "${LABEL[$name]}: GET /download?size=$CHECK_SIZE is wrong: status=$code, $(stat -c %s "$tmp/$name.download.body" 2>/dev/null || echo 0) bytes, $(cmp "$tmp/expected.download" "$tmp/$name.download.body" 2>&1 | head -n 1 || true). Its downloads are not measured."
		notes+=("**${LABEL[$name]}: wrong download (status $code); downloads not measured**")
		ok_download=0
	elif ! tr -d '\r' <"$tmp/$name.download.headers" | grep -qi "^content-length: *$CHECK_SIZE\$"; then
		warn "${LABEL[$name]}: the download has no Content-Length: $CHECK_SIZE header"
		notes+=("**${LABEL[$name]}: downloads without Content-Length**")
	fi
	code=$(curl -s --max-time 30 -X POST -H 'Expect:' -H 'Content-Type: application/octet-stream' \
		-T "${up_file[$CHECK_SIZE]}" -o "$tmp/$name.upload.body" -w '%{http_code}' "$BASE/upload") || code="curl-failed"
	answer=$(head -c 200 "$tmp/$name.upload.body" 2>/dev/null | tr -d '\n' || true)
	ccode=$(curl -s --max-time 30 -X POST -H 'Expect:' -H 'Content-Type: application/octet-stream' \
		-T "${up_file[$CHECK_SIZE]}" -o "$tmp/$name.count.body" -w '%{http_code}' "$BASE/count") || ccode="curl-failed"
	canswer=$(head -c 200 "$tmp/$name.count.body" 2>/dev/null | tr -d '\n' || true)
	if [[ $code != 200 ]] || ! printf '%s\n' "$check_hash_answer" | cmp -s - "$tmp/$name.upload.body"; then
		warn "${LABEL[$name]}: POST /upload of $CHECK_SIZE bytes answered status=$code '$answer', want '$check_hash_answer'. Its uploads are not measured."
		notes+=("**${LABEL[$name]}: wrong upload answer (status $code); uploads not measured**")
		ok_upload=0
	elif [[ $ccode != 200 ]] || ! printf '%s\n' "$CHECK_SIZE" | cmp -s - "$tmp/$name.count.body"; then
		warn "${LABEL[$name]}: POST /count of $CHECK_SIZE bytes answered status=$ccode '$canswer', want '$CHECK_SIZE'. Its uploads are not measured."
		notes+=("**${LABEL[$name]}: wrong /count answer (status $ccode); uploads not measured**")
		ok_upload=0
	else
		log "${LABEL[$name]}: 1 MiB download has the right bytes; 1 MiB upload: /upload answered '$answer', /count '$canswer'"
	fi
}

# row NAME DIR SIZE COUNT STATUS [FILE PEAK_KIB PEAK_SCOPE TICKS CURL_CPU OTHER_CORES]: one line of results.tsv.
row() {
	local name=$1 dir=$2 size=$3 count=$4 status=$5 file=${6:-} stats="0 0 0 0 0 0"
	[[ -z $file ]] || stats=$(awk -v agg="$AGGREGATE_FROM" -v mib="$MiB" '
		NF == 5 && $1 ~ /^[0-9]+$/ { n++; bytes += $3; secs += $5; v[n] = $4 / mib }
		END {
			if (n == 0) { print "0 0 0 0 0 0"; exit }
			for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
			med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			aggr = (secs > 0) ? bytes / secs / mib : 0
			printf "%.1f %s %.1f %.1f %.1f %d\n", (n >= agg) ? aggr : med, (n >= agg) ? "aggregate" : "median", v[1], med, v[n], bytes
		}' "$file")
	local headline method vmin vmed vmax bytes
	read -r headline method vmin vmed vmax bytes <<<"$stats"
	[[ $status == ok ]] || bad_rows=$((bad_rows + 1))
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$name" "${LABEL[$name]}" "$size" "$(size_label "$size")" "$dir" "$count" "$status" \
		"$headline" "$method" "$vmin" "$vmed" "$vmax" "$bytes" "${9:-0}" "$CLK_TCK" "${10:-0}" "${7:-0}" "${8:-}" "${11:-}" >>"$results"
}

# measure NAME DIR SIZE COUNT: warm-up, then one measured, checked series.
measure() {
	local name=$1 dir=$2 size=$3 count=$4 f status before after scope peak other
	f="$tmp/$name.$dir.$size.curl.log"
	if ((WARMUP > 0)); then
		log "${LABEL[$name]}: $dir $(size_label "$size"), $WARMUP warm-up transfer(s)"
		transfers "$dir" "$size" "$WARMUP" "$tmp/$name.$dir.$size.warmup.log"
		if [[ $xfer_status != ok ]]; then
			row "$name" "$dir" "$size" "$count" "warm-up: $xfer_status"
			return 0
		fi
	fi
	scope=series
	reset_peak "$server_pid" || scope=start
	log "${LABEL[$name]}: $dir $(size_label "$size") × $count"
	before=$(cpu_ticks "$server_pid")
	transfers "$dir" "$size" "$count" "$f"
	status=$xfer_status
	after=$(cpu_ticks "$server_pid")
	# Other load: CPU of every process but the server and curl, plus steal, in
	# cores while curl ran. Anything well above 0 means the run was disturbed.
	other=$(other_cores "$xfer_a" "$xfer_b" $((after - before)) "$(cat "$f.cpu")")
	peak=$(proc_kib "$server_pid" VmHWM)
	if ! kill -0 "$server_pid" 2>/dev/null; then
		status="server died"
		log "${LABEL[$name]} died; its output:"
		tail -n 20 "$tmp/$name.server.log" | sed 's/^/    /' >&2 || true
	fi
	row "$name" "$dir" "$size" "$count" "$status" "$f" "$peak" "$scope" $((after - before)) "$(cat "$f.cpu")" "$other"
	if awk -v o="$other" 'BEGIN { exit !(o > 0.2) }'; then
		disturbed+=("${LABEL[$name]} $dir $(size_label "$size") ($other cores)")
	fi
}

# bench_server NAME CMD...: every size and direction against one server start.
bench_server() {
	local name=$1 i dir
	shift
	if ! start_server "$name" "$@"; then
		for i in "${!size_bytes[@]}"; do
			for dir in download upload; do row "$name" "$dir" "${size_bytes[i]}" "${size_count[i]}" "did not start"; done
		done
		stop_server
		return 1
	fi
	local idle_rss
	idle_rss=$(proc_kib "$server_pid" VmRSS)
	check_server "$name"
	for i in "${!size_bytes[@]}"; do
		for dir in download upload; do
			if ! kill -0 "$server_pid" 2>/dev/null; then
				row "$name" "$dir" "${size_bytes[i]}" "${size_count[i]}" "server died"
			elif [[ $dir == download && $ok_download == 0 || $dir == upload && $ok_upload == 0 ]]; then
				row "$name" "$dir" "${size_bytes[i]}" "${size_count[i]}" "wrong response, not measured"
			else
				measure "$name" "$dir" "${size_bytes[i]}" "${size_count[i]}"
			fi
		done
	done
	notes+=("${LABEL[$name]}: RSS $(awk -v k="$idle_rss" 'BEGIN {printf "%.1f", k / 1024}') MiB after start-up, $(awk -v k="$(proc_kib "$server_pid" VmRSS)" 'BEGIN {printf "%.1f", k / 1024}') MiB at the end")
	stop_server
	wait_port_free || { log "port $PORT still busy after stopping ${LABEL[$name]}"; return 1; }
	return 0
}

# ---------------------------------------------------------------- run
port_free || die "something already answers on $HOST:$PORT; stop it first (ss -ltnp | grep :$PORT)"
results="$tmp/results.tsv"
: >"$results"
notes=()
disturbed=()
failed=0
bad_rows=0
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the machine is with nothing of ours running: 2 s of /proc/stat.
quiet_a="" quiet_b=""
snap quiet_a
sleep 2
snap quiet_b
busy_before=$(other_cores "$quiet_a" "$quiet_b" 0 0)
if awk -v o="$busy_before" 'BEGIN { exit !(o > 0.2) }'; then
	warn "the machine is already busy ($busy_before cores in use before any server started): the numbers will be noisy"
	notes+=("**the machine was busy before the run: $busy_before cores in use**")
fi
wasmloop_cmd=("$wasmloop_bin" run --workers "$WORKERS" "${wasmloop_flags[@]}" "$stream_wasm")
for s in "${servers[@]}"; do
	case $s in
	wasmloop) bench_server wasmloop "${wasmloop_cmd[@]}" || failed=1 ;;
	node) bench_server node node "$node_script" || failed=1 ;;
	nethttp) bench_server nethttp "$tmp/nethttp-stream" || failed=1 ;;
	esac
done

# ---------------------------------------------------------------- report
skipped=$(skipped_list)
series=""
for i in "${!size_bytes[@]}"; do
	n=${size_count[i]}
	series+="${series:+, }$(size_label "${size_bytes[i]}") × $n ($( ((n >= AGGREGATE_FROM)) && echo "aggregate MiB/s" || echo "median MiB/s"))"
done
{
	echo "## wasmloop streaming benchmark"
	echo
	echo "- date: $started"
	echo "- machine: $(machine_line); load average before: $load_before; cores busy in the 2 s before: $busy_before"
	echo "- tools: curl $curl_ver, $(go version 2>/dev/null | awk '{print $3}' || echo 'no go'), node $(node --version 2>/dev/null || echo 'absent')"
	echo "- transfers: one curl per series, transfers in a row on one keep-alive connection over loopback ($BASE), each checked (HTTP 200, every byte, upload answer = byte count); $WARMUP warm-up transfer(s) first; series: $series"
	echo "- uploads are measured against \`POST /count\`, which only counts the body's bytes; \`POST /upload\` (count + sha256) is used only in the 1 MiB correctness check before measuring. Hashing would measure the server's sha256 instead of its streaming: in a wasm guest that is Go's portable sha256 compiled to wasm, ~30 MiB/s, against native sha256 (SHA extensions) in Node.js and net/http"
	echo "- servers: wasmloop \`run --workers $WORKERS${WASMLOOP_FLAGS:+ $WASMLOOP_FLAGS}\` samples/stream ($wasmloop_note); Node.js node/stream.js; net/http tests/bench/nethttp-stream (default GOMAXPROCS)${skipped:+; skipped: $skipped}"
	echo "- server CPU: utime+stime of the server process (all threads, and any child processes) from /proc/PID/stat over the series, per GiB moved, CLK_TCK=$CLK_TCK (one tick is $(awk -v t="$CLK_TCK" -v b="$smallest_series" 'BEGIN {printf "%.3f", (1 / t) / (b / 1073741824)}') s/GiB in the smallest series); curl CPU likewise for the client"
	echo "- other load: CPU of every process except the server and curl (user+nice+system from /proc/stat), plus hypervisor steal, in cores while curl ran; softirq (loopback) is not counted"
	echo "- peak RSS: VmHWM of the server process (for wasmloop: the host, guest memories included), reset before each series (write 5 to /proc/PID/clear_refs); \"since start\" where the reset was refused"
	for n in "${notes[@]}"; do echo "- $n"; done
	if ((${#disturbed[@]} > 0)); then
		d=$(printf '%s, ' "${disturbed[@]}")
		echo "- **other load above 0.2 cores (other processes or hypervisor steal) during: ${d%, }; those numbers are suspect**"
	fi
	echo
	awk -f "$here/stream.awk" -v target="$TARGET_TPUT" -v rss_target="$RSS_TARGET_MIB" -v largest="$largest" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
((failed == 0)) || die "at least one server failed; see the messages above"
((bad_rows == 0)) || die "$bad_rows series failed or were not measured; see the report and the messages above"
