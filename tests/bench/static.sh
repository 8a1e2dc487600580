#!/usr/bin/env bash
# Static file benchmark: samples/static (wasmloop) vs nginx vs a Node.js static server
# (node/static.js, written as serve-static does it), serving a 1 KiB and a 1 MiB file,
# measured interleaved.
#
#   bash tests/bench/static.sh                        # from anywhere
#   ROUNDS=4 DURATION=3s OUT=static.md bash tests/bench/static.sh
#
# Environment (all optional):
#   ROUNDS    rounds (default 6); each runs every server on every file once, the servers in
#             an order rotated by one each round
#   DURATION  measured wrk run (default 5s); WARMUP before each, not counted (default 1s)
#   CONNS     wrk connections (default 64; one wrk thread)
#   WORKERS   wasmloop --workers and nginx worker_processes (default 2); Node runs one
#             process, as a Node program does unless it uses cluster
#   SKIP      servers not to run: wasmloop nginx node
#   FILES     files to measure (default "1k.bin 1m.bin")
#   PORT_BASE wasmloop on PORT_BASE, nginx on +1, Node on +2 (default 1347), all 127.0.0.1
#   OUT       also write the Markdown report to this file
#
# All three servers run at once, each on its own loopback port, over the same directory (a
# 1 KiB and a 1 MiB file of random bytes). Each answer is checked (status, length, bytes)
# before the rounds. In each round, for each file, every server gets a warm-up and a measured
# wrk run in turn; the server's CPU (utime+stime of it and its live children: nginx's
# workers) is read from /proc before and after. The report gives medians and the per-round
# ratios wasmloop / nginx and wasmloop / Node.
set -euo pipefail
export LC_ALL=C

HOST=127.0.0.1
PORT_BASE=${PORT_BASE:-1347}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-2}
OUT=${OUT:-}
LOGDIR=${LOGDIR:-}
START_TRIES=300
STOP_TRIES=50
WRK_TIMEOUT=10s

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=static
# shellcheck source=lib.sh
. "$here/lib.sh"
abs_path OUT LOGDIR
cd "$root"

ALL_SERVERS=(wasmloop nginx node)
declare -A LABEL=([wasmloop]="wasmloop samples/static" [nginx]="nginx" [node]="Node.js static.js")
declare -A PORTOF=([wasmloop]=$PORT_BASE [nginx]=$((PORT_BASE + 1)) [node]=$((PORT_BASE + 2)))
select_servers "${SKIP:-}"
need curl "apt-get install -y curl"
need wrk "apt-get install -y wrk"
if wants nginx; then need nginx "apt-get install -y nginx-light, or SKIP=nginx"; fi
if wants node; then need node "install Node.js, or SKIP=node"; fi
CLK_TCK=$(getconf CLK_TCK)
dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
for v in ROUNDS CONNS WORKERS PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-static.XXXXXX")
declare -A PID=()
stop_all() {
	local s
	for s in "${!PID[@]}"; do
		server_pid=${PID[$s]}
		stop_server
	done
}
trap 'rc=$?; stop_all; [[ -z $LOGDIR ]] || { mkdir -p "$LOGDIR" && cp "$tmp"/*.log "$tmp"/*.tsv "$LOGDIR"/ 2>/dev/null; }; rm -rf "$tmp"; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

www=$tmp/www
mkdir -p "$www"
head -c 1024 /dev/urandom >"$www/1k.bin"
head -c $((1 << 20)) /dev/urandom >"$www/1m.bin"
chmod -R a+rX "$tmp" # nginx's workers run as an unprivileged user when it is started as root
read -r -a FILES <<<"${FILES:-1k.bin 1m.bin}"
for f in "${FILES[@]}"; do [[ $f == 1k.bin || $f == 1m.bin ]] || die "FILES: $f is not one of 1k.bin 1m.bin"; done

# ---------------------------------------------------------------- start
if wants wasmloop; then
	WASMLOOP_BIN=${WASMLOOP_BIN:-}
	build_wasmloop static "" ""
	PORT=${PORTOF[wasmloop]} URL="http://$HOST:${PORTOF[wasmloop]}/1k.bin"
	start_server wasmloop "$wasmloop_bin" run --workers "$WORKERS" --env "PORT=$PORT" --dir "$www:/www:ro" "$guest_wasm" || die "wasmloop did not start"
	PID[wasmloop]=$server_pid
fi
if wants nginx; then
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server { listen $HOST:${PORTOF[nginx]}; root $www; }
}
EOF
	PORT=${PORTOF[nginx]} URL="http://$HOST:${PORTOF[nginx]}/1k.bin"
	start_server nginx nginx -c "$tmp/nginx/nginx.conf" || die "nginx did not start"
	PID[nginx]=$server_pid
fi
if wants node; then
	PORT=${PORTOF[node]} URL="http://$HOST:${PORTOF[node]}/1k.bin"
	start_server node node "$here/node/static.js" "$www" "${PORTOF[node]}" || die "node did not start"
	PID[node]=$server_pid
fi
server_pid=""

for s in "${ALL_SERVERS[@]}"; do
	wants "$s" || continue
	for f in "${FILES[@]}"; do
		curl -s --max-time 10 -o "$tmp/check" "http://$HOST:${PORTOF[$s]}/$f" || die "${LABEL[$s]}: GET /$f failed"
		cmp -s "$tmp/check" "$www/$f" || die "${LABEL[$s]}: GET /$f answered other bytes"
	done
done
log "every server answers both files with the right bytes"

# ---------------------------------------------------------------- run
results=$tmp/results.tsv
: >"$results"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
t0=$SECONDS
active=()
for s in "${ALL_SERVERS[@]}"; do wants "$s" && active+=("$s"); done
for ((r = 0; r < ROUNDS; r++)); do
	for f in "${FILES[@]}"; do
		n=${#active[@]}
		for ((i = 0; i < n; i++)); do
			s=${active[(i + r) % n]}
			url="http://$HOST:${PORTOF[$s]}/$f"
			run_child $((warm_s + 30)) "$tmp/warm.log" wrk -t 1 -c "$CONNS" -d "${warm_s}s" "$url" || die "wrk warm-up failed against ${LABEL[$s]}"
			c0=$(cpu_ticks "${PID[$s]}")
			a0=$(cpu_all)
			run_child $((dur_s + 30)) "$tmp/$s.$f.r$r.log" wrk -t 1 -c "$CONNS" -d "${dur_s}s" --timeout "$WRK_TIMEOUT" --latency -s "$here/report.lua" "$url" ||
				die "wrk failed against ${LABEL[$s]}"
			c1=$(cpu_ticks "${PID[$s]}")
			a1=$(cpu_all)
			lf=$tmp/$s.$f.r$r.log
			errs=0
			for e in connect read write timeout status; do errs=$((errs + $(wrk_field "$lf" "$e"))); done
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$f" "$r" "$(wrk_field "$lf" requests)" "$(wrk_field "$lf" duration_us)" \
				"$(wrk_field "$lf" p99_us)" "$errs" $((c1 - c0)) "$(cat "$lf.cpu")" $((${a1% *} - ${a0% *})) >>"$results"
			log "round $r, $f, ${LABEL[$s]}: $(awk -v n="$(wrk_field "$lf" requests)" -v d="$(wrk_field "$lf" duration_us)" -v c=$((c1 - c0)) -v t="$CLK_TCK" \
				'BEGIN { printf "%.0f req/s, server CPU %.1f µs/req", n / (d / 1e6), 1e6 * c / t / n }')${errs:+, $errs wrk errors}"
		done
	done
done
elapsed=$((SECONDS - t0))

# ---------------------------------------------------------------- report
# results.tsv: server file round requests duration_us p99_us wrk_errors cpu_ticks wrk_cpu_s busy_ticks
cat >"$tmp/report.awk" <<'AWK'
BEGIN { FS = "\t" }
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
function med(v, k,    s) { if (!k) return ""; sorted(v, k, s); return q(s, k, 0.5) }
function span(v, k,    s) { if (!k) return "–"; sorted(v, k, s); return sprintf("%.3f–%.3f", s[1], s[k]) }
{
	s = $1; file = $2; r = $3; secs = $5 / 1e6
	servers[s] = 1; files[file] = 1; if (r + 1 > rounds) rounds = r + 1
	if ($4 == 0 || $7 != 0) next
	rps[s, file, r] = $4 / secs
	mbs[s, file, r] = (file == "1m.bin" ? 1048576 : 1024) * $4 / secs / 1e6
	cpu[s, file, r] = 1e6 * $8 / tck / $4
	p99[s, file, r] = $6 / 1000
	ok[s, file, r] = 1
}
END {
	print "| file | server | req/s | body MB/s | server CPU µs/req | p99 ms | runs |"
	print "| --- | --- | --: | --: | --: | --: | --: |"
	n = split("1k.bin 1m.bin", fl, " "); m = split("wasmloop nginx node", sl, " ")
	for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
		s = sl[j]; file = fl[i]; if (!(s in servers)) continue
		k = 0; delete a; delete b; delete c; delete d
		for (r = 0; r < rounds; r++) if ((s, file, r) in ok) { k++; a[k] = rps[s, file, r]; b[k] = mbs[s, file, r]; c[k] = cpu[s, file, r]; d[k] = p99[s, file, r] }
		printf "| %s | %s | %s | %s | %s | %s | %d |\n", file, s, f(med(a, k), "%.0f"), f(med(b, k), "%.1f"), f(med(c, k), "%.1f"), f(med(d, k), "%.2f"), k
	}
	print ""
	print "| file | ratio (per round) | req/s: median (min–max) | CPU per request: median (min–max) | rounds |"
	print "| --- | --- | --- | --- | --: |"
	for (i = 1; i <= n; i++) for (j = 2; j <= m; j++) {
		o = sl[j]; file = fl[i]; if (!("wasmloop" in servers) || !(o in servers)) continue
		k = 0; delete a; delete c
		for (r = 0; r < rounds; r++) if (("wasmloop", file, r) in ok && (o, file, r) in ok) {
			k++; a[k] = rps["wasmloop", file, r] / rps[o, file, r]; c[k] = cpu["wasmloop", file, r] / cpu[o, file, r]
		}
		printf "| %s | wasmloop / %s | %s (%s) | %s (%s) | %d |\n", file, o, f(med(a, k), "%.3f"), span(a, k), f(med(c, k), "%.3f"), span(c, k), k
	}
}
AWK
{
	echo "## Static files: wasmloop samples/static vs nginx vs Node.js"
	echo
	echo "- date: $started; $elapsed s for $ROUNDS rounds; machine: $(machine_line); wrk -t1 -c$CONNS, ${WARMUP} warm-up then ${DURATION} per run, keep-alive, **on the same 2 shared cores** as the servers"
	echo "- wasmloop: --workers $WORKERS, --dir DIR:/www:ro, samples/static (a sync stat on the loop, then the body sent by the host — read into the connection, or from 64 KiB sendfile(2) with the head held by MSG_MORE: Response.SendFile, body_file); nginx $(nginx -v 2>&1 | sed 's/.*\///'): worker_processes $WORKERS, sendfile on, tcp_nopush on, access_log off; Node $(node --version 2>/dev/null || echo -): tests/bench/node/static.js, one process (stat, then a read stream piped to the response)"
	echo "- CPU: utime+stime of the server and its live children (nginx's workers) over the measured run, per request"
	echo
	awk -f "$here/stats.awk" -f "$tmp/report.awk" -v tck="$CLK_TCK" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
[[ -z $OUT ]] || cp "$tmp/report.md" "$OUT"
