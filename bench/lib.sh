# Shared helpers for proxy.sh, nc_propfind.sh and nc_put_rss.sh (sourced, not run).
# Defines: HERE ROOT HOST PY TMP PIDS, cleanup trap, free_port, load, mem, ratio, median, cpu_ticks,
# busy_since, run_bg, wait_http, start_waggle, start_nginx, start_sink, APPAPI_AUTH.
# Everything binds 127.0.0.1 only; everything started is killed on exit; every wait is bounded.
HOST=127.0.0.1
PY="${PYTHON:-python3}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
ROUNDS="${ROUNDS:-3}"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 && "$ROUNDS" -le 20 ]] || { echo "ROUNDS must be 1..20" >&2; exit 2; }
APPAPI_AUTH="$(printf 'alice:bench-secret' | base64)"
TENANT_KEY=bench-tenant-key-0123456789abcdef
TENANT_KEY_ID=k1

for tool in nginx wrk taskset curl "$PY"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx-light curl)" >&2; exit 2; }
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
CLIENT=""
SAMPLER=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "$CLIENT" "$SAMPLER"; do
        if [[ -n "$p" ]]; then kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    for pid in "${PIDS[@]:-}"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [[ -z "$pid" ]] && continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"   # includes the big sparse test files
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 20); do
        p="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
        [[ "$USED_PORTS" == *" $p "* ]] || { USED_PORTS+="$p "; echo "$p"; return; }
    done
    echo "no free port" >&2; exit 1
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
mem() { awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "%.2f %.2f\n", r/1024, h/1024}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
busy_since() {
    local b0 t0 b1 t1; read -r b0 t0 <<<"$1"; read -r b1 t1 < <(cpu_ticks)
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN{ if (t>0) printf "%.0f", 100*b/t; else print "n/a" }'
}
run_bg() { # cmd... ; background + wait so that a signal is handled at once
    "$@" &
    CLIENT=$!
    local rc=0
    wait "$CLIENT" || rc=$?
    CLIENT=""
    return "$rc"
}
wait_http() { # url [curl args...] ; bounded 15 s
    local url="$1"; shift
    for _ in $(seq 150); do
        curl -s -o /dev/null --max-time 1 "$@" "$url" && return 0
        sleep 0.1
    done
    echo "not answering: $url" >&2; return 1
}
# to milliseconds: wrk prints 123.45us / 1.23ms / 1.01s
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); printf "%.3f", v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); printf "%.3f", v} else if (v ~ /s$/) {sub(/s$/,"",v); printf "%.3f", v*1000} else print v }'; }
start_waggle() { # port nextcloud_port upstream_port name [extra env...] -> sets WPID
    local port="$1" ncp="$2" up="$3" name="$4"; shift 4
    mkdir -p "$TMP/$name-storage"
    env -i PATH="$PATH" HOME="$TMP" \
        APP_SECRET=bench-secret APP_ID=waggle APP_VERSION=0.1.0 APP_HOST="$HOST" APP_PORT="$port" \
        APP_PERSISTENT_STORAGE="$TMP/$name-storage" NEXTCLOUD_URL="http://$HOST:$ncp/" \
        WAGGLE_SERVICE_URL="http://$HOST:$up/" WAGGLE_TENANT_KEY="$TENANT_KEY" WAGGLE_TENANT_KEY_ID="$TENANT_KEY_ID" \
        RUST_LOG=warn "$@" \
        taskset -c "$SERVER_CPU" "$WAGGLE_BIN" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    WPID=$!
    PIDS+=("$WPID")
}
start_nginx() { # name conf-body(http block contents) -> sets NGPID
    local name="$1" body="$2" d="$TMP/$1"
    mkdir -p "$d/logs"
    cat >"$d/nginx.conf" <<EOC
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
$body
}
EOC
    taskset -c "$SERVER_CPU" nginx -p "$d" -e "$d/logs/error.log" -c nginx.conf -g 'daemon off;' >"$TMP/$name.out" 2>&1 &
    NGPID=$!
    PIDS+=("$NGPID")
}
start_sink() { # port -> sets SINKPID
    taskset -c "$SERVER_CPU" "$PY" "$HERE/drain_server.py" "$HOST" "$1" >"$TMP/sink.out" 2>&1 &
    SINKPID=$!
    PIDS+=("$SINKPID")
}
CAPS_JSON='{"ocs":{"meta":{"status":"ok","statuscode":200,"message":"OK"},"data":{"capabilities":{"theming":{"instanceid":"ocbench"}}}}}'
header() {
    echo "date:     $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    echo "machine:  nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "binary:   $WAGGLE_BIN ($(stat -c %s "$WAGGLE_BIN") bytes, built $(date -u -r "$WAGGLE_BIN" '+%H:%M:%SZ'))"
    echo "loadavg at start: $(load)"
}
