#!/usr/bin/env bash
# SaaS proxy benchmark: Waggle `/api/*` (signing on) vs the upstream hit directly vs nginx proxy_pass,
# all in one run, loopback only.
#
#   upstream  nginx (1 worker): GET /api/small (static 100 B JSON), GET /api/big (1 GiB sparse static
#             file), POST /api/post (`return 200`; nginx reads and discards the 4 KiB body before reusing
#             the connection), POST /api/upload -> proxy_pass to bench/drain_server.py (reads the whole
#             body, then 200), streamed (`proxy_request_buffering off`). The same nginx also plays the
#             fake Nextcloud (capabilities JSON) on another port.
#   direct    = client -> upstream
#   nginx     = client -> nginx proxy_pass (upstream keepalive 32, HTTP/1.1, default buffering) -> upstream
#   waggle    = client -> Waggle /api (RFC 9421 signing, Content-Digest; bodies > 1 MiB spooled) -> upstream
#
# Per round (ROUNDS, default 3; target order rotated each round): wrk small GET, wrk 4 KiB POST
# (`-t1 -c$CONNS -d$WRK_DURATION --latency`), curl 1 GiB download, curl 1 GiB upload (`-T`, POST);
# medians reported. Waggle's VmRSS is sampled every 100 ms during its uploads; VmHWM before/after.
# Servers pinned to CPU $SERVER_CPU (1), clients to CPU $CLIENT_CPU (0).
#   minproxy  = client -> examples/bench_minproxy (the same signing and pooled hyper-util client, and
#             nothing else: no auth, hygiene, middleware, timeouts or spooling) -> upstream; the
#             floor hyper + Tokio put under any proxy of this design on this machine. wrk tests only
#             (it keeps bodies in memory).
# Knobs: ROUNDS, WRK_DURATION (10s), CONNS (16), BIG_MIB (1024), WAGGLE_BIN, BENCH_TARGET_DIR,
# MINPROXY_BIN (default: examples/bench_minproxy next to WAGGLE_BIN, built if missing).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WRK_DURATION="${WRK_DURATION:-10s}"
CONNS="${CONNS:-16}"
BIG_MIB="${BIG_MIB:-1024}"
source "$HERE/lib.sh"

echo "== waggle SaaS proxy benchmark =="
header

UP="$(free_port)"; NC="$(free_port)"; PX="$(free_port)"; SINK="$(free_port)"; WP="$(free_port)"
chmod 755 "$TMP"   # nginx workers run as nobody when started as root
mkdir -p "$TMP/www/api"
printf '{"id":42,"name":"small","items":[1,2,3,4,5,6,7,8],"ok":true,"note":"waggle bench payload....."}\n' >"$TMP/www/api/small"
truncate -s "${BIG_MIB}M" "$TMP/www/api/big"          # sparse: no disk used, read as zeros
BIG_BYTES=$((BIG_MIB * 1024 * 1024))

start_sink "$SINK"
start_nginx upstream "
    upstream sink { server $HOST:$SINK; keepalive 8; }
    server {
        listen $HOST:$UP;
        client_max_body_size 2g;
        client_body_buffer_size 1m;
        root $TMP/www;
        location = /api/small { default_type application/json; }
        location = /api/big { default_type application/octet-stream; }
        location = /api/post { default_type application/json; return 200 '{\"ok\":true}'; }
        location = /api/upload {
            proxy_pass http://sink;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
            proxy_read_timeout 300s; proxy_send_timeout 300s;
        }
    }
    server {
        listen $HOST:$NC;
        location = /ocs/v2.php/cloud/capabilities { default_type application/json; return 200 '$CAPS_JSON'; }
    }"
UPID=$NGPID
start_nginx proxy "
    upstream u { server $HOST:$UP; keepalive 32; }
    server {
        listen $HOST:$PX;
        client_max_body_size 2g;
        client_body_buffer_size 1m;
        location / {
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_read_timeout 300s; proxy_send_timeout 300s;
        }
    }"
PXPID=$NGPID
start_waggle "$WP" "$NC" "$UP" waggle
MINPROXY_BIN="${MINPROXY_BIN:-$(dirname "$WAGGLE_BIN")/examples/bench_minproxy}"
if [[ ! -x "$MINPROXY_BIN" ]]; then
    echo "building $MINPROXY_BIN ..." >&2
    (cd "$ROOT" && CARGO_TARGET_DIR="$(dirname "$(dirname "$(dirname "$MINPROXY_BIN")")")" timeout 1800 \
        cargo build --release --locked --example bench_minproxy)
fi
MP="$(free_port)"
taskset -c "$SERVER_CPU" "$MINPROXY_BIN" "$MP" "http://$HOST:$UP" >"$TMP/minproxy.out" 2>"$TMP/minproxy.err" &
MPPID=$!
PIDS+=("$MPPID")
AUTH=(-H "AUTHORIZATION-APP-API: $APPAPI_AUTH" -H "EX-APP-ID: waggle")
wait_http "http://$HOST:$UP/api/small"
wait_http "http://$HOST:$PX/api/small"
wait_http "http://$HOST:$WP/heartbeat"
wait_http "http://$HOST:$SINK/"
wait_http "http://$HOST:$MP/api/small"
echo "upstream nginx pid $UPID :$UP (fake Nextcloud :$NC), proxy nginx pid $PXPID :$PX, sink pid $SINKPID :$SINK, waggle pid $WPID :$WP, minproxy pid $MPPID :$MP"

# correctness: each target answers each path with 200 and the same body size
for t in direct nginx waggle minproxy; do
    case $t in direct) p=$UP;; nginx) p=$PX;; waggle) p=$WP;; minproxy) p=$MP;; esac
    out="$(curl -s "${AUTH[@]}" -w ' %{http_code}' "http://$HOST:$p/api/small")"
    [[ "$out" == *' 200' ]] || { echo "$t GET /api/small -> $out" >&2; tail -5 "$TMP/waggle.err" >&2; exit 1; }
    out="$(curl -s "${AUTH[@]}" -X POST --data-binary "$(head -c 4096 /dev/zero | tr '\0' a)" -w ' %{http_code}' "http://$HOST:$p/api/post")"
    [[ "$out" == *' 200' ]] || { echo "$t POST /api/post -> $out" >&2; exit 1; }
done
read -r RSS0 HWM0 < <(mem "$WPID")
echo "waggle after warm-up: VmRSS $RSS0 MiB, VmHWM $HWM0 MiB"

declare -A RPS P50 P99
push() { eval "$1+=(\"\$2\")"; }
run_wrk() { # test target port -> appends to arrays
    local test="$1" t="$2" p="$3" f="$TMP/wrk-$1-$2-$r.txt" script=() path=/api/small
    if [[ "$test" == post ]]; then script=(-s "$HERE/post4k.lua"); path=/api/post; fi
    run_bg timeout 60 taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$WRK_DURATION" --latency "${AUTH[@]}" \
        "${script[@]}" "http://$HOST:$p$path" >"$f" 2>&1 || { cat "$f" >&2; exit 1; }
    if grep -q 'Non-2xx\|Socket errors' "$f"; then echo "wrk errors for $test $t:" >&2; cat "$f" >&2; exit 1; fi
    local rps p50 p99
    rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
    p50="$(to_ms "$(awk '/^ +50%/{print $2}' "$f")")"; p99="$(to_ms "$(awk '/^ +99%/{print $2}' "$f")")"
    echo "  wrk $test $t: $rps req/s, p50 $p50 ms, p99 $p99 ms"
    push "R_${test}_$t" "$rps"; push "L50_${test}_$t" "$p50"; push "L99_${test}_$t" "$p99"
}
sample_rss() { # pid outfile ; every 100 ms, at most 3000 samples (300 s)
    for _ in $(seq 3000); do rss_kib "$1" >>"$2" || break; sleep 0.1; done
}
run_xfer() { # dir(down|up) target port
    local dir="$1" t="$2" p="$3" out code bytes speed
    if [[ "$dir" == down ]]; then
        out="$(run_bg timeout 300 taskset -c "$CLIENT_CPU" curl -s "${AUTH[@]}" -o /dev/null \
            -w '%{http_code} %{size_download} %{speed_download}' "http://$HOST:$p/api/big")"
    else
        if [[ "$t" == waggle ]]; then sample_rss "$WPID" "$TMP/rss-up-$r.txt" & SAMPLER=$!; fi
        out="$(run_bg timeout 300 taskset -c "$CLIENT_CPU" curl -s "${AUTH[@]}" -X POST -T "$TMP/www/api/big" \
            -H 'Content-Type: application/octet-stream' -H 'Expect:' -o "$TMP/up-$t.json" \
            -w '%{http_code} %{size_upload} %{speed_upload}' "http://$HOST:$p/api/upload")"
        if [[ -n "$SAMPLER" ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; fi
        grep -q "\"bytes\": $BIG_BYTES" "$TMP/up-$t.json" || { echo "upload $t: sink got $(cat "$TMP/up-$t.json")" >&2; exit 1; }
    fi
    read -r code bytes speed <<<"$out"
    [[ "$code" == 200 && "$bytes" == "$BIG_BYTES" ]] || { echo "$dir $t: code $code bytes $bytes" >&2; tail -5 "$TMP/waggle.err" >&2; exit 1; }
    local mbs; mbs="$(awk -v s="$speed" 'BEGIN{printf "%.1f", s/1e6}')"
    echo "  $dir $t: $mbs MB/s"
    push "X_${dir}_$t" "$mbs"
}

TARGETS=(direct nginx waggle)
port_of() { case $1 in direct) echo "$UP";; nginx) echo "$PX";; waggle) echo "$WP";; minproxy) echo "$MP";; esac; }
UPHWM=()
for r in $(seq "$ROUNDS"); do
    k=$(( (r - 1) % 3 )); order=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
    echo; echo "-- round $r/$ROUNDS (order: ${order[*]}); loadavg $(load)"
    for test in get post; do
        c0="$(cpu_ticks)"
        for t in "${order[@]}" minproxy; do run_wrk "$test" "$t" "$(port_of "$t")"; done
        echo "  wrk $test phase: loadavg $(load), CPU busy $(busy_since "$c0")%"
    done
    c0="$(cpu_ticks)"
    for t in "${order[@]}"; do run_xfer down "$t" "$(port_of "$t")"; done
    echo "  download phase: loadavg $(load), CPU busy $(busy_since "$c0")%"
    c0="$(cpu_ticks)"
    read -r _ hwm_before < <(mem "$WPID")
    for t in "${order[@]}"; do run_xfer up "$t" "$(port_of "$t")"; done
    read -r _ hwm_after < <(mem "$WPID")
    smax="$(sort -n "$TMP/rss-up-$r.txt" | tail -1 | awk '{printf "%.2f", $1/1024}')"
    smin="$(sort -n "$TMP/rss-up-$r.txt" | head -1 | awk '{printf "%.2f", $1/1024}')"
    echo "  upload phase: loadavg $(load), CPU busy $(busy_since "$c0")%; waggle VmRSS during its upload: min $smin max $smax MiB ($(wc -l <"$TMP/rss-up-$r.txt") samples), VmHWM $hwm_before -> $hwm_after MiB"
    UPHWM+=("$hwm_after"); UPMAX+=("$smax")
done
read -r RSSE HWME < <(mem "$WPID")
kill -0 "$WPID" || { echo "waggle died" >&2; exit 1; }
if [[ -s "$TMP/waggle.err" ]]; then echo "note: waggle wrote to stderr:"; head -5 "$TMP/waggle.err"; fi
echo "spool dir after run: $(find "$TMP/waggle-storage" -type f | wc -l) files, $(du -sk "$TMP/waggle-storage" | cut -f1) KiB"

med() { local -n a="$1"; median "${a[@]}"; }
verdict() { awk -v c="$1" 'BEGIN{print (c ? "PASS" : "FAIL")}'; }
echo; echo "== summary: medians over $ROUNDS round(s) =="
printf '%-22s %12s %12s %12s %14s %14s\n' "" direct nginx waggle "waggle/nginx" "waggle/direct"
for test in get post; do
    for m in R L50 L99; do
        d="$(med "${m}_${test}_direct")"; n="$(med "${m}_${test}_nginx")"; w="$(med "${m}_${test}_waggle")"
        case $m in R) lab="$test req/s";; L50) lab="$test p50 ms";; L99) lab="$test p99 ms";; esac
        printf '%-22s %12s %12s %12s %14s %14s\n' "$lab" "$d" "$n" "$w" "$(ratio "$w" "$n")" "$(ratio "$w" "$d")"
        eval "S_${m}_${test}_d=$d S_${m}_${test}_n=$n S_${m}_${test}_w=$w"
    done
done
echo "minimal proxy baseline (signing + pooled client only; see the header of this script):"
for test in get post; do
    m="$(med "R_${test}_minproxy")"; w="$(med "R_${test}_waggle")"; n="$(med "R_${test}_nginx")"
    printf '  %-6s minproxy %10s req/s = %sx nginx; waggle = %sx minproxy; p99 minproxy %s ms\n' \
        "$test" "$m" "$(ratio "$m" "$n")" "$(ratio "$w" "$m")" "$(med "L99_${test}_minproxy")"
done
for dir in down up; do
    d="$(med "X_${dir}_direct")"; n="$(med "X_${dir}_nginx")"; w="$(med "X_${dir}_waggle")"
    printf '%-22s %12s %12s %12s %14s %14s\n' "1 GiB ${dir}load MB/s" "$d" "$n" "$w" "$(ratio "$w" "$n")" "$(ratio "$w" "$d")"
    eval "S_${dir}_d=$d S_${dir}_n=$n S_${dir}_w=$w"
done
for test in get post; do for t in direct nginx waggle minproxy; do
    eval "echo \"per round $test req/s $t: \${R_${test}_$t[*]}; p99 ms: \${L99_${test}_$t[*]}\""
done; done
for dir in down up; do for t in direct nginx waggle; do
    eval "echo \"per round ${dir}load MB/s $t: \${X_${dir}_$t[*]}\""
done; done
PEAK="$(printf '%s\n' "${UPHWM[@]}" | sort -g | tail -1)"
echo "waggle RSS MiB: after warm-up $RSS0 (HWM $HWM0); VmHWM after each upload phase: ${UPHWM[*]}; sampled max during its uploads: ${UPMAX[*]}; at end $RSSE (HWM $HWME)"
echo
echo "== targets =="
echo "GET req/s >= 1.0x nginx:          $(ratio "$S_R_get_w" "$S_R_get_n")x  $(verdict "$(awk -v a="$S_R_get_w" -v b="$S_R_get_n" 'BEGIN{print (a>=b)}')")"
echo "GET p99 <= nginx p99 + 1 ms:      $S_L99_get_w vs $S_L99_get_n ms  $(verdict "$(awk -v a="$S_L99_get_w" -v b="$S_L99_get_n" 'BEGIN{print (a<=b+1)}')")"
echo "4 KiB POST req/s >= 0.9x nginx:   $(ratio "$S_R_post_w" "$S_R_post_n")x  $(verdict "$(awk -v a="$S_R_post_w" -v b="$S_R_post_n" 'BEGIN{print (a>=0.9*b)}')")"
echo "download >= 0.8x direct:          $(ratio "$S_down_w" "$S_down_d")x  $(verdict "$(awk -v a="$S_down_w" -v b="$S_down_d" 'BEGIN{print (a>=0.8*b)}')")"
echo "upload >= 0.6x direct:            $(ratio "$S_up_w" "$S_up_d")x  $(verdict "$(awk -v a="$S_up_w" -v b="$S_up_d" 'BEGIN{print (a>=0.6*b)}')")"
echo "upload ahead of nginx:            $(ratio "$S_up_w" "$S_up_n")x  $(verdict "$(awk -v a="$S_up_w" -v b="$S_up_n" 'BEGIN{print (a>b)}')")"
echo "peak RSS <= 64 MiB in 1 GiB upload: VmHWM $PEAK MiB  $(verdict "$(awk -v a="$PEAK" 'BEGIN{print (a<=64)}')")"
echo "loadavg at end: $(load)"
