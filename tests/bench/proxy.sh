#!/usr/bin/env bash
# Reverse proxy benchmark: samples/proxy (wasmloop) vs the idiomatic Node.js http proxy
# (node/proxy.js: http.request through a keep-alive agent, bodies piped) vs nginx proxy_pass
# (HTTP/1.1 to a keepalive upstream block), all three in front of the same upstream, the Go
# net/http hello server (nethttp/main.go), measured interleaved.
#
#   bash tests/bench/proxy.sh                          # from anywhere; about 2 minutes
#   ROUNDS=4 DURATION=3s OUT=proxy.md bash tests/bench/proxy.sh
#
# Environment (all optional):
#   ROUNDS    rounds (default 6); each runs every proxy once, the proxies in an order rotated
#             by one each round
#   DURATION  measured wrk run (default 5s); WARMUP before each, not counted (default 1s)
#   CONNS     wrk connections (default 64; one wrk thread)
#   WORKERS   wasmloop --workers and nginx worker_processes (default 2); Node runs one process
#   WASMLOOP_FLAGS  more flags for `wasmloop run` (e.g. --cpuprofile /tmp/proxy.prof)
#   SKIP      proxies not to run: wasmloop node nginx
#   PORT_BASE wasmloop on PORT_BASE, Node on +1, nginx on +2, the upstream on +3 (default
#             1367), all 127.0.0.1
#   OUT       also write the Markdown report to this file
#   LOGDIR    keep server logs, wrk output and results.tsv here
#   WASMLOOP_BIN, PROXY_WASM  a prebuilt CLI / guest instead of building them
#
# The upstream and every proxy run at once, each on its own loopback port. Each proxy is
# checked first (GET with a path and query, and a POST with a 100 KiB body, must come back
# 200 "Hello World\n" from the upstream). In each round every proxy gets a warm-up and a
# measured `wrk -t1 -cCONNS` run in turn; the CPU (utime, stime) of the proxy process and its
# live children (nginx's workers) and, separately, of the upstream, is read from /proc before
# and after. The report gives medians and the per-round ratios wasmloop / Node and
# wasmloop / nginx.
set -euo pipefail
export LC_ALL=C

HOST=127.0.0.1 # loopback only
PORT_BASE=${PORT_BASE:-1367}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-2}
WASMLOOP_FLAGS=${WASMLOOP_FLAGS:-}
OUT=${OUT:-}
LOGDIR=${LOGDIR:-}
WASMLOOP_BIN=${WASMLOOP_BIN:-}
PROXY_WASM=${PROXY_WASM:-}
TARGET_RATIO=2.0 # wasmloop req/s over Node's, at least (median of the per-round ratios)
START_TRIES=300
STOP_TRIES=50
WRK_TIMEOUT=10s

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
LOG_TAG=proxy
# shellcheck source=lib.sh
. "$here/lib.sh"
abs_path OUT LOGDIR WASMLOOP_BIN PROXY_WASM
cd "$root"

ALL_SERVERS=(wasmloop node nginx)
declare -A LABEL=([wasmloop]="wasmloop samples/proxy" [node]="Node.js proxy.js" [nginx]="nginx proxy_pass" [upstream]="upstream (Go net/http)")
UP_PORT=$((PORT_BASE + 3))
declare -A PORTOF=([wasmloop]=$PORT_BASE [node]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 2)) [upstream]=$UP_PORT)
select_servers "${SKIP:-}"
need curl "apt-get install -y curl"
need wrk "apt-get install -y wrk"
need go "install Go (https://go.dev/dl/): the upstream is built from tests/bench/nethttp"
need timeout "part of coreutils"
if wants nginx; then need nginx "apt-get install -y nginx-light, or SKIP=nginx"; fi
if wants node; then need node "install Node.js, or SKIP=node"; fi
CLK_TCK=$(getconf CLK_TCK)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
((dur_s > 0)) || die "DURATION must be positive"
for v in ROUNDS CONNS WORKERS PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((PORT_BASE >= 1024 && PORT_BASE <= 65532)) || die "PORT_BASE must be 1024..65532"
read -r -a wasmloop_flags <<<"$WASMLOOP_FLAGS"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasmloop-proxy.XXXXXX")
install_cleanup
declare -A PID=()
stop_all() {
	local s
	if [[ -n ${child_pid:-} ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true # timeout passes it on to wrk
		wait "$child_pid" 2>/dev/null || true
		child_pid=""
	fi
	for s in "${!PID[@]}"; do # the proxies first, the upstream last
		[[ $s == upstream ]] && continue
		server_pid=${PID[$s]}
		unset 'PID[$s]'
		stop_server
	done
	if [[ -n ${PID[upstream]:-} ]]; then
		server_pid=${PID[upstream]}
		unset 'PID[upstream]'
		stop_server
	fi
}
# (set +e: the `exit $rc` subshell that hands cleanup the status must not end the trap.)
trap 'rc=$?; set +e; stop_all; (exit $rc); cleanup' EXIT

# ---------------------------------------------------------------- build
wasmloop_note="skipped"
if wants wasmloop; then
	build_wasmloop proxy "$PROXY_WASM" PROXY_WASM
fi
log "building tests/bench/nethttp (the upstream)"
go build -o "$tmp/nethttp" ./tests/bench/nethttp || die "go build ./tests/bench/nethttp failed"

# ---------------------------------------------------------------- start
# start NAME CMD...: start_server on PORTOF[NAME]; sets PID[NAME].
start() {
	local name=$1
	shift
	PORT=${PORTOF[$name]} URL="http://$HOST:${PORTOF[$name]}/"
	start_server "$name" "$@" || die "${LABEL[$name]} did not start"
	PID[$name]=$server_pid
	server_pid=""
}
start upstream env "PORT=$UP_PORT" "$tmp/nethttp"
if wants wasmloop; then
	start wasmloop "$wasmloop_bin" run --workers "$WORKERS" --env "PORT=${PORTOF[wasmloop]}" --env "UPSTREAM=http://$HOST:$UP_PORT" \
		--allow-connect "$HOST:$UP_PORT" "${wasmloop_flags[@]}" "$guest_wasm"
fi
if wants node; then
	start node node "$here/node/proxy.js" "${PORTOF[node]}" "$UP_PORT"
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
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream backend {
    server $HOST:$UP_PORT;
    keepalive 64;
  }
  server {
    listen $HOST:${PORTOF[nginx]};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
	# nginx's workers run as an unprivileged user when it is started as root: they must reach
	# the temp paths (a request body over 16 KiB goes to client_body_temp_path).
	chmod a+x "$tmp"
	chmod -R a+rwX "$tmp/nginx"
	start nginx nginx -c "$tmp/nginx/nginx.conf"
fi

head -c 102400 /dev/urandom >"$tmp/body.bin"
for s in "${servers[@]}"; do
	base="http://$HOST:${PORTOF[$s]}"
	got=$(curl -s --max-time 10 -D "$tmp/$s.headers" "$base/some/path?q=1&r=2") || die "${LABEL[$s]}: GET failed"
	status=$(head -n 1 "$tmp/$s.headers" | tr -d '\r')
	[[ $status == "HTTP/1.1 200"* && $got == "Hello World" ]] || die "${LABEL[$s]}: GET answered '$status' '$got'"
	got=$(curl -s --max-time 10 -H 'Expect:' --data-binary @"$tmp/body.bin" "$base/upload") || die "${LABEL[$s]}: POST failed"
	[[ $got == "Hello World" ]] || die "${LABEL[$s]}: POST with a 100 KiB body answered '$got'"
	log "${LABEL[$s]}: GET and POST answer 200 Hello World; response head: $(tr -d '\r' <"$tmp/$s.headers" | sed 1d | paste -sd '|' -)"
done

# ---------------------------------------------------------------- run
# passive_opens: TCP connections accepted so far in this network namespace (/proc/net/snmp,
# Tcp PassiveOpens). Over a measured run, less wrk's CONNS, it counts the connections the
# proxy opened to the upstream (anything else on the machine that accepts is noise).
passive_opens() {
	awk '$1 == "Tcp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else { print $c; exit } }' /proc/net/snmp
}
# results.tsv: server round position requests duration_us p50_us p99_us wrk_errors
#   proxy_user proxy_sys upstream_user upstream_sys (ticks) wrk_cpu_s busy_ticks idle_ticks bytes
#   accepted (TCP connections accepted on the machine during the run)
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
	n=${#servers[@]}
	for ((i = 0; i < n; i++)); do
		s=${servers[(i + r) % n]}
		url="http://$HOST:${PORTOF[$s]}/"
		run_child $((warm_s + 30)) "$tmp/warm.log" wrk -t 1 -c "$CONNS" -d "${warm_s}s" "$url" || die "wrk warm-up failed against ${LABEL[$s]}"
		read -r pu0 ps0 < <(cpu_ticks_split "${PID[$s]}")
		read -r uu0 us0 < <(cpu_ticks_split "${PID[upstream]}")
		read -r b0 i0 < <(cpu_all)
		o0=$(passive_opens)
		lf=$tmp/$s.r$r.log
		run_child $((dur_s + 30)) "$lf" wrk -t 1 -c "$CONNS" -d "${dur_s}s" --timeout "$WRK_TIMEOUT" --latency -s "$here/report.lua" "$url" ||
			die "wrk failed against ${LABEL[$s]}"
		read -r pu1 ps1 < <(cpu_ticks_split "${PID[$s]}")
		read -r uu1 us1 < <(cpu_ticks_split "${PID[upstream]}")
		read -r b1 i1 < <(cpu_all)
		o1=$(passive_opens)
		for p in "$s" upstream; do
			kill -0 "${PID[$p]}" 2>/dev/null || { tail -n 20 "$tmp/$p.server.log" >&2; die "${LABEL[$p]} died in round $r"; }
		done
		errs=0
		for e in connect read write timeout status; do errs=$((errs + $(wrk_field "$lf" "$e"))); done
		((errs == 0)) || {
			failed=1
			warn "${LABEL[$s]}, round $r: wrk counted $errs errors: $(grep -E 'Socket errors|Non-2xx' "$lf" | paste -sd ';' -)"
		}
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$i" "$(wrk_field "$lf" requests)" \
			"$(wrk_field "$lf" duration_us)" "$(wrk_field "$lf" p50_us)" "$(wrk_field "$lf" p99_us)" "$errs" \
			$((pu1 - pu0)) $((ps1 - ps0)) $((uu1 - uu0)) $((us1 - us0)) "$(cat "$lf.cpu")" $((b1 - b0)) $((i1 - i0)) "$(wrk_field "$lf" bytes)" $((o1 - o0)) >>"$results"
		log "round $r, ${LABEL[$s]}: $(awk -v n="$(wrk_field "$lf" requests)" -v d="$(wrk_field "$lf" duration_us)" -v p="$(wrk_field "$lf" p99_us)" \
			-v u=$((pu1 - pu0)) -v y=$((ps1 - ps0)) -v t="$CLK_TCK" \
			'BEGIN { printf "%.0f req/s, p99 %.2f ms, proxy CPU %.1f µs/req user + %.1f system", n / (d / 1e6), p / 1000, 1e6 * u / t / n, 1e6 * y / t / n }')$( ((errs == 0)) || echo ", $errs wrk errors")"
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
	s = $1; r = $2; secs = $5 / 1e6
	servers[s] = 1; if (r + 1 > rounds) rounds = r + 1
	errs[s] += $8
	if ($4 == 0 || $8 != 0) next
	rps[s, r] = $4 / secs; p50[s, r] = $6 / 1000; p99[s, r] = $7 / 1000
	user[s, r] = 1e6 * $9 / tck / $4; sys[s, r] = 1e6 * $10 / tck / $4
	up[s, r] = 1e6 * ($11 + $12) / tck / $4
	pc[s, r] = ($9 + $10) / tck / secs; uc[s, r] = ($11 + $12) / tck / secs; wc[s, r] = $13 / secs
	idle[s, r] = ($14 + $15 > 0) ? 100 * $15 / ($14 + $15) : 0
	bpr[s, r] = $16 / $4
	opens[s, r] = 1000 * (($17 > conns) ? $17 - conns : 0) / $4
	ok[s, r] = 1
}
END {
	ns = split("wasmloop node nginx", sl, " ")
	print "| proxy | req/s (min–max) | p50 ms | p99 ms | proxy CPU µs/req: user | system | total | upstream CPU µs/req | proxy cores busy | upstream cores busy | wrk cores busy | machine idle | bytes/resp | upstream conns / 1k req | errors | runs |"
	print "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |"
	for (b = 1; b <= ns; b++) {
		s = sl[b]; if (!(s in servers)) continue
		k = 0; split("", A); split("", P5); split("", P9); split("", U); split("", S); split("", T); split("", UP); split("", PC); split("", UC); split("", WC); split("", ID); split("", BY); split("", OP)
		for (r = 0; r < rounds; r++) if ((s, r) in ok) {
			k++; A[k] = rps[s, r]; P5[k] = p50[s, r]; P9[k] = p99[s, r]; U[k] = user[s, r]; S[k] = sys[s, r]; T[k] = U[k] + S[k]
			UP[k] = up[s, r]; PC[k] = pc[s, r]; UC[k] = uc[s, r]; WC[k] = wc[s, r]; ID[k] = idle[s, r]; BY[k] = bpr[s, r]; OP[k] = opens[s, r]
		}
		printf "| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %% | %s | %s | %d | %d |\n", s, f(med(A, k), "%.0f"), span(A, k, "%.0f"),
			f(med(P5, k), "%.2f"), f(med(P9, k), "%.2f"), f(med(U, k), "%.1f"), f(med(S, k), "%.1f"), f(med(T, k), "%.1f"), f(med(UP, k), "%.1f"),
			f(med(PC, k), "%.2f"), f(med(UC, k), "%.2f"), f(med(WC, k), "%.2f"), f(med(ID, k), "%.0f"), f(med(BY, k), "%.0f"), f(med(OP, k), "%.1f"), errs[s], k
	}
	print ""
	print "| ratio (per round) | req/s: median (min–max) | p99: median (min–max) | proxy CPU/req total: median (min–max) | user | system | rounds |"
	print "| --- | --- | --- | --- | --- | --- | --: |"
	for (b = 2; b <= ns; b++) {
		o = sl[b]; if (!("wasmloop" in servers) || !(o in servers)) continue
		k = 0; split("", A); split("", P9); split("", T); split("", U); split("", S); list[o] = ""
		for (r = 0; r < rounds; r++) if (("wasmloop", r) in ok && (o, r) in ok) {
			k++; A[k] = rps["wasmloop", r] / rps[o, r]; P9[k] = p99["wasmloop", r] / p99[o, r]
			T[k] = (user["wasmloop", r] + sys["wasmloop", r]) / (user[o, r] + sys[o, r])
			U[k] = (user[o, r] > 0) ? user["wasmloop", r] / user[o, r] : 0; S[k] = (sys[o, r] > 0) ? sys["wasmloop", r] / sys[o, r] : 0
			list[o] = list[o] (list[o] == "" ? "" : ", ") sprintf("%.2f", A[k])
		}
		mr = med(A, k)
		verdict = (o == "node" && k) ? ((mr >= target) ? " (target ≥ " target "×: met)" : " (target ≥ " target "×: **missed**)") : ""
		printf "| wasmloop / %s | %s (%s)%s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %d |\n", o, f(mr, "%.3f"), span(A, k, "%.3f"), verdict,
			f(med(P9, k), "%.3f"), span(P9, k, "%.3f"), f(med(T, k), "%.3f"), span(T, k, "%.3f"),
			f(med(U, k), "%.3f"), span(U, k, "%.3f"), f(med(S, k), "%.3f"), span(S, k, "%.3f"), k
	}
	print ""
	for (b = 2; b <= ns; b++) if (sl[b] in list) print "Per round, wasmloop / " sl[b] " req/s, in order: " list[sl[b]] "  "
}
AWK
{
	echo "## Reverse proxy: wasmloop samples/proxy vs Node.js http vs nginx proxy_pass"
	echo
	echo "- date: $started; $elapsed s for $ROUNDS rounds; machine: $(machine_line); cores busy in the 2 s before: $busy_before"
	echo "- load: wrk -t1 -c$CONNS, ${WARMUP} warm-up then ${DURATION} per run, keep-alive, GET / (upstream answer: 200, 12-byte body), **on the same 2 shared cores** as the proxies and the upstream; the proxies' order rotated each round"
	echo "- upstream: tests/bench/nethttp (Go net/http hello, default GOMAXPROCS), on 127.0.0.1:$UP_PORT, shared by all three"
	echo "- wasmloop: --workers $WORKERS${WASMLOOP_FLAGS:+ $WASMLOOP_FLAGS}, samples/proxy ($wasmloop_note); Node $(node --version 2>/dev/null || echo -): tests/bench/node/proxy.js, one process, http.Agent keepAlive; nginx $(nginx -v 2>&1 | sed 's/.*\///'): worker_processes $WORKERS, proxy_http_version 1.1, upstream keepalive 64, access_log off"
	echo "- CPU: utime (user) and stime (system) of the proxy process and its live children (nginx's workers) over the measured run, per request; the upstream's CPU separately; upstream conns / 1k req: TCP connections accepted on the machine during the run (/proc/net/snmp PassiveOpens) less wrk's $CONNS, per 1000 requests (0 = every upstream connection reused)"
	echo
	awk -f "$here/stats.awk" -f "$tmp/report.awk" -v tck="$CLK_TCK" -v target="$TARGET_RATIO" -v conns="$CONNS" "$results"
} >"$tmp/report.md"
cat "$tmp/report.md"
[[ -z $OUT ]] || cp "$tmp/report.md" "$OUT"
((failed == 0)) || die "wrk counted errors in some runs (see the warnings above)"
