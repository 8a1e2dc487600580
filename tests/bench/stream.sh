#!/usr/bin/env bash
# wasmloop streaming benchmark: download and upload throughput, peak RSS and
# CPU per GiB, wasmloop vs Node.js vs Go net/http, measured interleaved.
#
#   bash tests/bench/stream.sh                   # from the repo root
#   ROUNDS=3 bash tests/bench/stream.sh          # a quick run
#   SIZES="1m:200/20 100m:1/40" WORKERS=2 OUT=stream.md SKIP=node bash tests/bench/stream.sh
#
# Environment (all optional):
#   SIZES     transfer sizes, each SIZE[:BATCH][/ROUNDS]; SIZE in bytes with an
#             optional k, m or g suffix (KiB, MiB, GiB); BATCH transfers per
#             server per round, in a row on one keep-alive connection (default
#             1); ROUNDS rounds (default: $ROUNDS, else 15).
#             Default "1m:200/30 100m:1/120" (about 2 1/2 minutes in all
#             on a quiet 2-vCPU machine).
#   ROUNDS    rounds for every size, overriding the /ROUNDS of SIZES
#   WARMUP    unmeasured transfers per server before each size and direction (default 1)
#   WORKERS   wasmloop --workers (default 2)
#   WASMLOOP_FLAGS
#             more flags for `wasmloop run` (default none), e.g. "--body-limit 128m"
#   RSS_TARGET_MIB
#             wasmloop's peak RSS target at the largest size (default 64)
#   XFER_TIMEOUT
#             longest a single transfer may take, in seconds (default 120)
#   PORT_BASE first of the three loopback ports: wasmloop listens on PORT_BASE,
#             Node.js on PORT_BASE+1, net/http on PORT_BASE+2 (default 1337)
#   OUT       also write the Markdown report to this file
#   SKIP      servers not to run, space or comma separated: wasmloop node nethttp
#   LOGDIR    keep server logs, the last curl output, results.tsv and
#             transfers.tsv (every measured transfer) in this directory
#   WASMLOOP_BIN, STREAM_WASM
#             use this prebuilt wasmloop CLI / stream guest instead of building
#             ./cmd/wasmloop / ./samples/stream
#
# All servers run at once, each on its own port of 127.0.0.1, and are checked
# (a 1 MiB download has the right bytes and a Content-Length, the answer of
# POST /upload to a 1 MiB upload has the right count and sha256, that of POST
# /count the right count). Then, for each size and direction (downloads from
# GET /download?size=N, uploads to POST /count), the transfers are interleaved:
# in each round every server gets one BATCH (one curl, BATCH transfers on one
# keep-alive connection), one server after the other, the order rotated by one
# each round, so each server is first, second and last equally often. Load that
# comes and goes on a shared machine then hits every server alike, and each
# round gives a ratio between servers measured seconds apart. Every transfer is
# checked (HTTP 200, all bytes, and for uploads the right count). Uploads are
# measured against /count, which only counts the bytes, not /upload: a wasm
# guest's sha256 (Go's portable code, ~30 MiB/s) would be measured instead of
# the server's body streaming.
# The report (Markdown) goes to stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C

# ---------------------------------------------------------------- settings
HOST=127.0.0.1 # loopback only, never any other address
PORT_BASE=${PORT_BASE:-1337}
# 1 MiB × 200: one transfer at ~1 GiB/s lasts ~1 ms, shorter than a CPU clock
# tick; a batch of 200 per round makes each round's number (and the CPU
# figure) long enough to mean something.
SIZES=${SIZES:-1m:200/30 100m:1/120}
ROUNDS=${ROUNDS:-}
DEFAULT_ROUNDS=15
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
OTHER_MAX=0.2   # cores of other load in a round above which the round counts as disturbed
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
[[ -z $ROUNDS || $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $RSS_TARGET_MIB =~ ^[1-9][0-9]*$ ]] || die "RSS_TARGET_MIB must be a positive integer, got '$RSS_TARGET_MIB'"
[[ $XFER_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "XFER_TIMEOUT must be a positive number of seconds, got '$XFER_TIMEOUT'"
if ! [[ $PORT_BASE =~ ^[1-9][0-9]*$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65533)); then
	die "PORT_BASE must be a port from 1024 to 65533, got '$PORT_BASE'"
fi
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

# SIZES -> size_bytes[], size_count[] (the batch), size_rounds[]
size_bytes=()
size_count=()
size_rounds=()
read -r -a size_specs <<<"$SIZES"
((${#size_specs[@]} > 0)) || die "SIZES is empty"
for spec in "${size_specs[@]}"; do
	[[ $spec =~ ^([0-9]+)([kKmMgG]?)(:([0-9]+))?(/([0-9]+))?$ ]] ||
		die "SIZES: bad entry '$spec' (want SIZE[:BATCH][/ROUNDS], e.g. 1m:200/15 or 100m:1/30)"
	b=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	k | K) b=$((b * 1024)) ;;
	m | M) b=$((b * MiB)) ;;
	g | G) b=$((b * 1024 * MiB)) ;;
	esac
	n=${BASH_REMATCH[4]:-1}
	r=${ROUNDS:-${BASH_REMATCH[6]:-$DEFAULT_ROUNDS}}
	((b > 0)) || die "SIZES: size must be positive in '$spec'"
	((n > 0)) || die "SIZES: batch must be positive in '$spec'"
	((r > 0)) || die "SIZES: rounds must be positive in '$spec'"
	size_bytes+=("$b")
	size_count+=("$n")
	size_rounds+=("$r")
done
largest=0
smallest_series=0 # bytes one server moves in the smallest measured series
for i in "${!size_bytes[@]}"; do
	b=${size_bytes[i]}
	((b > largest)) && largest=$b
	t=$((b * size_count[i] * size_rounds[i]))
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
# Every server runs at once: srv_pid holds them (lib.sh's cleanup stops only
# server_pid), so the EXIT trap stops curl, then each of them, then cleans up.
# (set +e: the `exit $rc` subshell that hands cleanup the status must not end the trap.)
declare -A srv_pid=()
stop_servers() {
	local s
	if [[ -n ${child_pid:-} ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true
		wait "$child_pid" 2>/dev/null || true
		child_pid=""
	fi
	for s in "${!srv_pid[@]}"; do
		server_pid=${srv_pid[$s]}
		unset 'srv_pid[$s]'
		stop_server
	done
}
trap 'rc=$?; set +e; stop_servers; (exit $rc); cleanup' EXIT

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
# by every process but the servers and the client, plus steal.
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

# pid_ticks VAR PID: utime+stime+cutime+cstime of one process, in clock ticks,
# into VAR (0 once it is gone), without forking. lib.sh's cpu_ticks also sums
# live descendants but walks all of /proc: fine per series, too slow per round.
pid_ticks() {
	local line rest f
	if read -r line 2>/dev/null <"/proc/$2/stat"; then
		rest=${line##*) } # field 2 (comm) may hold spaces and ')'
		read -r -a f <<<"$rest"
		printf -v "$1" '%s' $((f[11] + f[12] + f[13] + f[14]))
	else
		printf -v "$1" '0'
	fi
}

# servers_ticks VAR: pid_ticks summed over every running server.
servers_ticks() {
	local s t total=0
	for s in "${!srv_pid[@]}"; do
		pid_ticks t "${srv_pid[$s]}"
		total=$((total + t))
	done
	printf -v "$1" '%s' "$total"
}

# self_ms VAR: CPU milliseconds (user+system) of this shell and of its reaped
# children (curl, awk, ...) so far, into VAR, from the `times` builtin (no fork).
self_ms() {
	local a b t m sec total=0
	times >"$tmp/times"
	while read -r a b; do
		for t in "$a" "$b"; do # "0m1.250s"
			m=${t%%m*} sec=${t#*m}
			sec=${sec%s}
			total=$((total + 10#$m * 60000 + 10#${sec%.*} * 1000 + 10#${sec#*.}))
		done
	done <"$tmp/times"
	printf -v "$1" '%s' "$total"
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

# transfers DIR SIZE COUNT FILE: run COUNT checked transfers against $BASE; the
# curl lines go to FILE, curl's CPU seconds to FILE.cpu. Sets xfer_status to
# "ok" or what went wrong. (Not meant for $(...): curl must run as a child of
# the main shell, so the EXIT trap can stop it.)
xfer_status=""
transfers() {
	local dir=$1 size=$2 count=$3 file=$4 rc=0 bad i answer
	curl_cmd "$dir" "$size" "$count" "$file.answer"
	run_child $((count * XFER_TIMEOUT + 30)) "$file" "${cmd[@]}" || rc=$?
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
	# Every upload: the answer of /count is exactly "<byte count>\n" (read
	# with the builtin: no fork per transfer).
	if [[ -z $bad && $dir == upload ]]; then
		for ((i = 1; i <= count; i++)); do
			answer=""
			IFS= read -r -d '' answer <"$file.answer.$i" 2>/dev/null || true
			if [[ $answer != "$size"$'\n' ]]; then
				answer=${answer//$'\n'/}
				bad="transfer $i: wrong answer '${answer:0:200}' from /count (want '$size')"
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

# check_server NAME: the correctness checks against $BASE; sets ok_download / ok_upload.
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

# srow NAME DIR SIZE_INDEX STATUS [TICKS CURL_CS PEAK_KIB PEAK_SCOPE OTHER DISTURBED]:
# one server's summary line of results.tsv for one size and direction.
srow() {
	local name=$1 dir=$2 i=$3 status=$4
	[[ $status == ok ]] || bad_rows=$((bad_rows + 1))
	printf 'S\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$name" "${LABEL[$name]}" "${size_bytes[i]}" "$(size_label "${size_bytes[i]}")" "$dir" \
		"${size_count[i]}" "${size_rounds[i]}" "$status" "${5:-0}" "$CLK_TCK" "${6:-0}" "${7:-0}" "${8:-}" "${9:-}" "${10:-0}" >>"$results"
}

# alive NAME: the server is still running (else say so, once, with its last output).
alive() {
	local name=$1
	[[ -n ${srv_pid[$name]:-} ]] || return 1
	kill -0 "${srv_pid[$name]}" 2>/dev/null && return 0
	if [[ -z ${died[$name]:-} ]]; then
		died[$name]=1
		log "${LABEL[$name]} died; its output:"
		tail -n 20 "$tmp/$name.server.log" | sed 's/^/    /' >&2 || true
	fi
	return 1
}

# measure SIZE_INDEX DIR: warm-up, then ROUNDS interleaved rounds of one BATCH
# per server (order rotated each round), every transfer checked; one summary
# line per server into results.tsv, one line per transfer into transfers.tsv.
measure() {
	local i=$1 dir=$2 s r k n pos f c other status
	local size=${size_bytes[$1]} batch=${size_count[$1]} rounds=${size_rounds[$1]}
	local -a part=() order=()
	local -A st=() t0=() t1=() curl_cs=() scope=()
	local blk_a blk_b blk_self_a blk_self_b blk_srv_a blk_srv_b
	local ra rb self_a self_b srv_a srv_b disturbed=0
	for s in "${servers[@]}"; do
		if [[ -n ${not_started[$s]:-} ]]; then
			srow "$s" "$dir" "$i" "did not start"
		elif ! alive "$s"; then
			srow "$s" "$dir" "$i" "server died"
		elif [[ $dir == download && ${ok_dl[$s]} == 0 || $dir == upload && ${ok_up[$s]} == 0 ]]; then
			srow "$s" "$dir" "$i" "wrong response, not measured"
		else
			part+=("$s")
		fi
	done
	((${#part[@]} > 0)) || return 0
	n=${#part[@]}
	if ((WARMUP > 0)); then
		log "$dir $(size_label "$size"): $WARMUP warm-up transfer(s) per server"
		for s in "${part[@]}"; do
			BASE=${base_of[$s]}
			transfers "$dir" "$size" "$WARMUP" "$tmp/$s.warmup.log"
			[[ $xfer_status == ok ]] || st[$s]="warm-up: $xfer_status"
		done
	fi
	for s in "${part[@]}"; do
		scope[$s]=series
		reset_peak "${srv_pid[$s]}" || scope[$s]=start
		t0[$s]=$(cpu_ticks "${srv_pid[$s]}")
		curl_cs[$s]=0
	done
	log "$dir $(size_label "$size"): $rounds rounds of $batch transfer(s) per server, interleaved"
	snap blk_a
	self_ms blk_self_a
	servers_ticks blk_srv_a
	for ((r = 0; r < rounds; r++)); do
		order=()
		for ((k = 0; k < n; k++)); do order+=("${part[(r + k) % n]}"); done
		snap ra
		self_ms self_a
		servers_ticks srv_a
		pos=0
		for s in "${order[@]}"; do
			pos=$((pos + 1))
			[[ -z ${st[$s]:-} ]] || continue # failed earlier in this series
			BASE=${base_of[$s]}
			f="$tmp/$s.curl.log"
			transfers "$dir" "$size" "$batch" "$f"
			read -r c <"$f.cpu" || c=0.00
			curl_cs[$s]=$((${curl_cs[$s]} + 10#${c/./}))
			if [[ $xfer_status != ok ]]; then
				st[$s]="round $((r + 1)): $xfer_status"
				alive "$s" || st[$s]="server died in round $((r + 1))"
				continue
			fi
			# One line per transfer: T name size dir round position k bytes seconds.
			awk -v pre="T\t$s\t$size\t$dir\t$((r + 1))\t$pos" 'NF == 5 && $1 ~ /^[0-9]+$/ { printf "%s\t%d\t%s\t%s\n", pre, ++k, $3, $5 }' \
				"$f" >>"$transfers_tsv"
		done
		snap rb
		self_ms self_b
		servers_ticks srv_b
		other=$(other_cores "$ra" "$rb" $((srv_b - srv_a)) "$(awk -v m=$((self_b - self_a)) 'BEGIN {printf "%.3f", m / 1000}')")
		# One line per round: O size dir round other-load-cores wall-seconds.
		printf 'O\t%s\t%s\t%d\t%s\t%s\n' "$size" "$dir" $((r + 1)) "$other" "$(awk -v a="$ra" -v b="$rb" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.3f", y[1] - x[1]}')" >>"$rounds_tsv"
		if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o > m) }'; then disturbed=$((disturbed + 1)); fi
	done
	snap blk_b
	self_ms blk_self_b
	servers_ticks blk_srv_b
	log "$dir $(size_label "$size"): $rounds rounds in $(awk -v a="$blk_a" -v b="$blk_b" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.1f", y[1] - x[1]}') s"
	other=$(other_cores "$blk_a" "$blk_b" $((blk_srv_b - blk_srv_a)) "$(awk -v m=$((blk_self_b - blk_self_a)) 'BEGIN {printf "%.3f", m / 1000}')")
	for s in "${part[@]}"; do
		t1[$s]=$(cpu_ticks "${srv_pid[$s]}")
		status=${st[$s]:-ok}
		if [[ $status == ok ]] && ! alive "$s"; then status="server died"; fi
		srow "$s" "$dir" "$i" "$status" $((${t1[$s]} - ${t0[$s]})) "${curl_cs[$s]}" "$(proc_kib "${srv_pid[$s]}" VmHWM)" "${scope[$s]}" "$other" "$disturbed"
	done
	if ((disturbed > 0)); then
		disturbed_series+=("$dir $(size_label "$size"): $disturbed of $rounds rounds")
	fi
}

# ---------------------------------------------------------------- run
declare -A port_of=() base_of=() not_started=() died=() ok_dl=() ok_up=() idle_rss=()
for k in "${!ALL_SERVERS[@]}"; do
	s=${ALL_SERVERS[k]}
	port_of[$s]=$((PORT_BASE + k))
	base_of[$s]="http://$HOST:${port_of[$s]}"
done
for s in "${servers[@]}"; do
	URL="${base_of[$s]}/"
	port_free || die "something already answers on $HOST:${port_of[$s]}; stop it first (ss -ltnp | grep :${port_of[$s]})"
done
results="$tmp/results.tsv"
transfers_tsv="$tmp/transfers.tsv"
rounds_tsv="$tmp/rounds.tsv"
: >"$results"
: >"$transfers_tsv"
: >"$rounds_tsv"
notes=()
disturbed_series=()
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

# Start every server, each on its own port, then check each.
started_s=$SECONDS
for s in "${servers[@]}"; do
	PORT=${port_of[$s]}
	URL="${base_of[$s]}/"
	READY_URL="${base_of[$s]}/download?size=1"
	case $s in
	wasmloop) scmd=("$wasmloop_bin" run --workers "$WORKERS" --env "PORT=$PORT" "${wasmloop_flags[@]}" "$stream_wasm") ;;
	node) scmd=("PORT=$PORT" node "$node_script") ;;
	nethttp) scmd=("PORT=$PORT" "$tmp/nethttp-stream") ;;
	esac
	if start_server "$s" "${scmd[@]}"; then
		srv_pid[$s]=$server_pid
		server_pid=""
		idle_rss[$s]=$(proc_kib "${srv_pid[$s]}" VmRSS)
	else
		[[ -z $server_pid ]] || stop_server
		not_started[$s]=1
		failed=1
	fi
done
for s in "${servers[@]}"; do
	if [[ -n ${srv_pid[$s]:-} ]]; then
		BASE=${base_of[$s]}
		check_server "$s"
		ok_dl[$s]=$ok_download
		ok_up[$s]=$ok_upload
	fi
done

for i in "${!size_bytes[@]}"; do
	for dir in download upload; do
		measure "$i" "$dir"
	done
done

for s in "${servers[@]}"; do
	[[ -z ${not_started[$s]:-} ]] || continue
	if alive "$s"; then
		notes+=("${LABEL[$s]} (port ${port_of[$s]}): RSS $(awk -v k="${idle_rss[$s]}" 'BEGIN {printf "%.1f", k / 1024}') MiB after start-up, $(awk -v k="$(proc_kib "${srv_pid[$s]}" VmRSS)" 'BEGIN {printf "%.1f", k / 1024}') MiB at the end")
	else
		notes+=("**${LABEL[$s]} died during the run**")
		failed=1
	fi
done
stop_servers
elapsed=$((SECONDS - started_s))

# ---------------------------------------------------------------- report
skipped=$(skipped_list)
series=""
for i in "${!size_bytes[@]}"; do
	n=${size_count[i]}
	pl=s
	((n > 1)) || pl=""
	series+="${series:+, }$(size_label "${size_bytes[i]}"): ${size_rounds[i]} rounds of $n transfer$pl per server"
done
ports=""
for s in "${servers[@]}"; do ports+="${ports:+, }${LABEL[$s]} :${port_of[$s]}"; done
{
	echo "## wasmloop streaming benchmark"
	echo
	echo "- date: $started; $elapsed s from the first server's start to the last one's stop, $SECONDS s in all (builds included)"
	echo "- machine: $(machine_line); load average before: $load_before; cores busy in the 2 s before: $busy_before"
	echo "- tools: curl $curl_ver, $(go version 2>/dev/null | awk '{print $3}' || echo 'no go'), node $(node --version 2>/dev/null || echo 'absent')"
	echo "- interleaved: all servers listen at once on loopback ($ports); for each size and direction, $WARMUP warm-up transfer(s) per server, then rounds in which every server gets one batch (one curl, the transfers in a row on one keep-alive connection), one server after the other, the order rotated by one each round; $series. Every transfer is checked (HTTP 200, every byte, upload answer = byte count)"
	echo "- MiB/s: per server and round, the batch's bytes / the sum of its transfers' curl \`time_total\`; the table gives the median over the rounds, the middle half (p25–p75) and the range. The ratios are the median of the per-round ratios (both servers measured in the same round, seconds apart), with p25–p75"
	echo "- uploads are measured against \`POST /count\`, which only counts the body's bytes; \`POST /upload\` (count + sha256) is used only in the 1 MiB correctness check before measuring. Hashing would measure the server's sha256 instead of its streaming: in a wasm guest that is Go's portable sha256 compiled to wasm, ~30 MiB/s, against native sha256 (SHA extensions) in Node.js and net/http"
	echo "- servers: wasmloop \`run --workers $WORKERS${WASMLOOP_FLAGS:+ $WASMLOOP_FLAGS}\` samples/stream ($wasmloop_note); Node.js node/stream.js; net/http tests/bench/nethttp-stream (default GOMAXPROCS)${skipped:+; skipped: $skipped}"
	echo "- server CPU: utime+stime of the server process (all threads, and any child processes) from /proc/PID/stat over all rounds of a size and direction (the servers idle while another one is measured), per GiB it moved, CLK_TCK=$CLK_TCK (one tick is $(awk -v t="$CLK_TCK" -v b="$smallest_series" 'BEGIN {printf "%.3f", (1 / t) / (b / 1073741824)}') s/GiB in the smallest series); curl CPU likewise for the client"
	echo "- other load: CPU of every process except the servers and this script with its curl and awk (user+nice+system from /proc/stat), plus hypervisor steal, in cores over all rounds of a size and direction; softirq (loopback) is not counted. A round above $OTHER_MAX cores counts as disturbed"
	echo "- peak RSS: VmHWM of the server process (for wasmloop: the host, guest memories included), reset after the warm-up of each size and direction (write 5 to /proc/PID/clear_refs); \"since start\" where the reset was refused"
	for n in "${notes[@]}"; do echo "- $n"; done
	if ((${#disturbed_series[@]} > 0)); then
		d=$(printf '%s, ' "${disturbed_series[@]}")
		echo "- rounds with other load above $OTHER_MAX cores (other processes or hypervisor steal): ${d%, }; interleaving spreads such load over all servers, but those rounds' ratios are noisier"
	fi
	echo
	awk -f "$here/stats.awk" -f "$here/stream.awk" -v target="$TARGET_TPUT" -v other_max="$OTHER_MAX" -v rss_target="$RSS_TARGET_MIB" -v largest="$largest" "$results" "$transfers_tsv"
} >"$tmp/report.md"
cat "$tmp/report.md"
if [[ -n $OUT ]]; then
	cp "$tmp/report.md" "$OUT"
	log "report written to $OUT"
fi
log "done in $elapsed s"
((failed == 0)) || die "at least one server failed; see the messages above"
((bad_rows == 0)) || die "$bad_rows series failed or were not measured; see the report and the messages above"
