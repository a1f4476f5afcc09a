#!/usr/bin/env bash
# Heartbeat benchmark: Waggle (release build) vs an nginx static-JSON baseline, in one run.
#
# Measures, all over loopback only (127.0.0.1):
#   1. idle RSS of waggle (VmRSS/VmHWM from /proc/<pid>/status, 2 s after it is ready)
#   2. sequential latency: 100 warm-up + 1,000 timed `GET /heartbeat` on one keep-alive connection
#      (bench/heartbeat_latency.py), for waggle and for nginx; p50/p90/p99/max and the ratios
#   3. RSS of waggle after those requests
#   4. throughput: wrk, 10 s, 1 thread, 2 connections, against both; req/s and the ratio
#   5. RSS of waggle at the end
# Steps 2 and 4 are repeated ROUNDS times (default 3; order waggle/nginx alternated each round) and the
# medians are reported, because the CPUs are shared with other work on this machine.
# Servers run pinned to CPU 1, load generators (python client, wrk) to CPU 0 (needs >= 2 CPUs).
#
# Environment knobs:
#   WAGGLE_BIN          release binary to run (default: $BENCH_TARGET_DIR/release/waggle, built if missing)
#   BENCH_TARGET_DIR    cargo target dir used to build it (default: <repo>/target)
#   REQUESTS / WARMUP   timed / warm-up request count (default 1000 / 100)
#   ROUNDS              repetitions of the latency + wrk measurements (default 3, max 20)
#   WRK_DURATION        wrk duration (default 10s)
#   SERVER_CPU / CLIENT_CPU   CPUs to pin to (default 1 / 0)
#
# Everything started here is stopped on exit (trap); every wait is bounded.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REQUESTS="${REQUESTS:-1000}"
WARMUP="${WARMUP:-100}"
WRK_DURATION="${WRK_DURATION:-10s}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
HOST=127.0.0.1
PY="${PYTHON:-python3}"

for tool in nginx wrk taskset "$PY"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx-light util-linux)" >&2; exit 2; }
done

if [[ -z "${WAGGLE_BIN:-}" ]]; then
    BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$ROOT/target}"
    WAGGLE_BIN="$BENCH_TARGET_DIR/release/waggle"
    if [[ ! -x "$WAGGLE_BIN" ]]; then
        echo "building $WAGGLE_BIN ..." >&2
        (cd "$ROOT" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" timeout 1800 cargo build --release --locked)
    fi
fi
[[ -x "$WAGGLE_BIN" ]] || { echo "no waggle binary at $WAGGLE_BIN" >&2; exit 2; }

TMP="$(mktemp -d -t waggle-bench.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "${CLIENT:-}" ]]; then kill -TERM "$CLIENT" 2>/dev/null || true; wait "$CLIENT" 2>/dev/null || true; fi
    for pid in "${PIDS[@]:-}"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [[ -z "$pid" ]] && continue
        # bounded wait (5 s), then SIGKILL
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
mem() { # pid -> "VmRSS_MiB VmHWM_MiB"
    awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "%.2f %.2f\n", r/1024, h/1024}' "/proc/$1/status"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
field() { # json-line key -> value
    "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

echo "== waggle heartbeat benchmark =="
echo "date:     $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "machine:  nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "binary:   $WAGGLE_BIN ($(stat -c %s "$WAGGLE_BIN") bytes)"
echo "loadavg at start: $(load)"

# --- servers -------------------------------------------------------------------------------------
WPORT="$(free_port)"
NPORT="$(free_port)"
while [[ "$NPORT" == "$WPORT" ]]; do NPORT="$(free_port)"; done

mkdir -p "$TMP/storage" "$TMP/nginx/logs"
env -i PATH="$PATH" HOME="$TMP" \
    APP_SECRET=bench-secret NEXTCLOUD_URL=http://127.0.0.1:9/ APP_PERSISTENT_STORAGE="$TMP/storage" \
    APP_HOST="$HOST" APP_PORT="$WPORT" RUST_LOG=warn \
    taskset -c "$SERVER_CPU" "$WAGGLE_BIN" >"$TMP/waggle.out" 2>"$TMP/waggle.err" &
WPID=$!
PIDS+=("$WPID")

cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen $HOST:$NPORT;
        location = /heartbeat {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c nginx.conf -g 'daemon off;' \
    >"$TMP/nginx.out" 2>&1 &
NPID=$!
PIDS+=("$NPID")

fail_logs() {
    echo "--- waggle stderr ---" >&2; tail -20 "$TMP/waggle.err" >&2 || true
    echo "--- nginx ---" >&2; tail -20 "$TMP/nginx.out" "$TMP/nginx/logs/error.log" >&2 || true
}
"$PY" "$HERE/heartbeat_latency.py" wait "$HOST" "$WPORT" /heartbeat --timeout 15 || { fail_logs; exit 1; }
"$PY" "$HERE/heartbeat_latency.py" wait "$HOST" "$NPORT" /heartbeat --timeout 15 || { fail_logs; exit 1; }
echo "waggle pid $WPID on $HOST:$WPORT, nginx pid $NPID on $HOST:$NPORT (servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU)"

# --- idle RSS ------------------------------------------------------------------------------------
sleep 2
read -r IDLE_RSS IDLE_HWM < <(mem "$WPID")
echo "waggle idle (2 s after ready): VmRSS ${IDLE_RSS} MiB, VmHWM ${IDLE_HWM} MiB"

# --- rounds: latency then wrk, order alternated each round -------------------------------------
# This machine's CPUs are shared with whatever else runs on it (other containers' builds do not show
# in `ps` but do in the load average and /proc/stat), so several rounds are run and medians reported.
# Clients run in the background and are waited for, so that a signal is handled at once (bash runs a
# trap only after the foreground command ends) and cleanup() can kill them.
CLIENT=""
run_bg() { # cmd... ; runs it in the background, waits, returns its status
    "$@" &
    CLIENT=$!
    local rc=0
    wait "$CLIENT" || rc=$?
    CLIENT=""
    return "$rc"
}
run_latency() { # label port round -> sets LAT (RESULT json)
    run_bg taskset -c "$CLIENT_CPU" "$PY" "$HERE/heartbeat_latency.py" measure "$HOST" "$2" /heartbeat \
        --warmup "$WARMUP" --requests "$REQUESTS" --deadline 120 --label "$1" >"$TMP/lat-$1-$3.txt" \
        || { cat "$TMP/lat-$1-$3.txt" >&2; exit 1; }
    grep -v '^RESULT ' "$TMP/lat-$1-$3.txt" | sed 's/^/  /' >&2
    LAT="$(grep '^RESULT ' "$TMP/lat-$1-$3.txt" | cut -d' ' -f2-)"
}
run_wrk() { # label port round -> sets RPS (req/s)
    run_bg timeout 60 taskset -c "$CLIENT_CPU" wrk -t1 -c2 -d"$WRK_DURATION" --latency "http://$HOST:$2/heartbeat" \
        >"$TMP/wrk-$1-$3.txt" 2>&1 || { cat "$TMP/wrk-$1-$3.txt" >&2; exit 1; }
    if grep -q 'Non-2xx\|Socket errors' "$TMP/wrk-$1-$3.txt"; then
        echo "wrk reported errors for $1:" >&2; cat "$TMP/wrk-$1-$3.txt" >&2; exit 1
    fi
    RPS="$(awk '/^Requests\/sec:/{print $2}' "$TMP/wrk-$1-$3.txt")"
    echo "  wrk $1: $RPS req/s; latency $(awk '/^ +50%/{a=$2} /^ +99%/{b=$2} END{print "p50 " a ", p99 " b}' "$TMP/wrk-$1-$3.txt")" >&2
}
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
busy_since() { # "busy total" at start -> percent of both CPUs busy since then
    local b0 t0 b1 t1; read -r b0 t0 <<<"$1"; read -r b1 t1 < <(cpu_ticks)
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN{ if (t>0) printf "%.0f", 100*b/t; else print "n/a" }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

ROUNDS="${ROUNDS:-3}"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 && "$ROUNDS" -le 20 ]] || { echo "ROUNDS must be 1..20" >&2; exit 2; }
declare -a W50 W90 W99 WMAX N50 N90 N99 NMAX WRPS NRPS
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then order=(waggle nginx); else order=(nginx waggle); fi
    echo
    echo "-- round $r/$ROUNDS (order: ${order[*]}); loadavg $(load)"
    c0="$(cpu_ticks)"
    for who in "${order[@]}"; do
        port="$WPORT"; [[ "$who" == nginx ]] && port="$NPORT"
        run_latency "$who" "$port" "$r"; lat="$LAT"
        if [[ "$who" == waggle ]]; then
            W50+=("$(field "$lat" p50_us)"); W90+=("$(field "$lat" p90_us)"); W99+=("$(field "$lat" p99_us)"); WMAX+=("$(field "$lat" max_us)")
        else
            N50+=("$(field "$lat" p50_us)"); N90+=("$(field "$lat" p90_us)"); N99+=("$(field "$lat" p99_us)"); NMAX+=("$(field "$lat" max_us)")
        fi
    done
    if (( r == 1 )); then
        read -r REQ_RSS REQ_HWM < <(mem "$WPID")
        echo "  waggle after $((WARMUP + REQUESTS)) requests: VmRSS ${REQ_RSS} MiB, VmHWM ${REQ_HWM} MiB"
    fi
    echo "  latency phase: loadavg $(load), machine CPU busy $(busy_since "$c0")% (both CPUs, all processes)"
    c0="$(cpu_ticks)"
    for who in "${order[@]}"; do
        port="$WPORT"; [[ "$who" == nginx ]] && port="$NPORT"
        run_wrk "$who" "$port" "$r"; rps="$RPS"
        if [[ "$who" == waggle ]]; then WRPS+=("$rps"); else NRPS+=("$rps"); fi
    done
    echo "  wrk phase: loadavg $(load), machine CPU busy $(busy_since "$c0")% (100% expected: wrk and server each fill a CPU)"
done
read -r WRK_RSS WRK_HWM < <(mem "$WPID")
echo "waggle after all rounds: VmRSS ${WRK_RSS} MiB, VmHWM ${WRK_HWM} MiB"

# waggle must still be alive and silent at warn level
kill -0 "$WPID" || { echo "waggle died" >&2; fail_logs; exit 1; }
if [[ -s "$TMP/waggle.err" ]]; then echo "note: waggle wrote to stderr:" >&2; head -5 "$TMP/waggle.err" >&2; fi

# --- summary (medians over rounds) ---------------------------------------------------------------
w50="$(median "${W50[@]}")"; w90="$(median "${W90[@]}")"; w99="$(median "${W99[@]}")"; wmax="$(median "${WMAX[@]}")"
n50="$(median "${N50[@]}")"; n90="$(median "${N90[@]}")"; n99="$(median "${N99[@]}")"; nmax="$(median "${NMAX[@]}")"
wrps="$(median "${WRPS[@]}")"; nrps="$(median "${NRPS[@]}")"
echo
echo "== summary: medians over $ROUNDS round(s) =="
printf '%-26s %10s %10s %10s %10s\n' "latency (us)" p50 p90 p99 max
printf '%-26s %10s %10s %10s %10s\n' "waggle /heartbeat" "$w50" "$w90" "$w99" "$wmax"
printf '%-26s %10s %10s %10s %10s\n' "nginx static JSON" "$n50" "$n90" "$n99" "$nmax"
printf '%-26s %10s %10s %10s %10s\n' "ratio waggle/nginx" "$(ratio "$w50" "$n50")" "$(ratio "$w90" "$n90")" \
    "$(ratio "$w99" "$n99")" "$(ratio "$wmax" "$nmax")"
echo "per round p50 waggle: ${W50[*]} | nginx: ${N50[*]}"
echo "per round p99 waggle: ${W99[*]} | nginx: ${N99[*]}"
echo "wrk req/s (1 thread, 2 conns, $WRK_DURATION): waggle $wrps, nginx $nrps, ratio waggle/nginx $(ratio "$wrps" "$nrps")"
echo "per round req/s waggle: ${WRPS[*]} | nginx: ${NRPS[*]}"
echo "waggle RSS MiB: idle $IDLE_RSS (HWM $IDLE_HWM); after first latency round $REQ_RSS (HWM $REQ_HWM); at end $WRK_RSS (HWM $WRK_HWM)"
echo "loadavg at end: $(load)"
echo "SUMMARY {\"rounds\":$ROUNDS,\"waggle_p50_us\":$w50,\"waggle_p90_us\":$w90,\"waggle_p99_us\":$w99,\"waggle_max_us\":$wmax,\"nginx_p50_us\":$n50,\"nginx_p90_us\":$n90,\"nginx_p99_us\":$n99,\"nginx_max_us\":$nmax,\"waggle_rps\":$wrps,\"nginx_rps\":$nrps,\"idle_rss_mib\":$IDLE_RSS,\"idle_hwm_mib\":$IDLE_HWM,\"after_req_rss_mib\":$REQ_RSS,\"after_req_hwm_mib\":$REQ_HWM,\"end_rss_mib\":$WRK_RSS,\"end_hwm_mib\":$WRK_HWM}"
