#!/usr/bin/env bash
# Events benchmark: reconcile of a 10,000-user / 1,000-group directory and outbox delivery
# throughput, loopback only, all in one run.
#
#   fake Nextcloud  bench/fake_directory.py (threaded stdlib HTTP server): capabilities, users/admin,
#                   paged cloud/groups and cloud/users/details (user i in group i % GROUPS)
#   SaaS webhook    nginx, `location = /waggle/v1/events { return 204; }`
#   Waggle          release, fresh APP_PERSISTENT_STORAGE per variant, WAGGLE_SYNC__ADMIN_UID=admin,
#                   WAGGLE_SERVER__LIFECYCLE_TIMEOUT_SECS=600
#
# Variants (each on a fresh Waggle): concurrency in $CONCS (default "8 32") x
#   live  nginx up BEFORE `POST /admin/sync`: delivery runs during and after the reconcile
#   after nginx started only once the reconcile answered (pure delivery); until then deliveries get
#         "connection refused" and are retried on a short schedule ($AFTER_SCHEDULE_MS x 300)
# For each: reconcile duration (Waggle's `reconcile.duration_ms` and curl wall time), events, time
# from the end of the reconcile (or nginx start) until `GET /admin/events` shows queue.depth 0
# (polled every 50 ms), events/s, Waggle VmHWM; for the first live variant also a SECOND sync with
# no change (0 events). Baselines: the fake directory paged directly by a Python client, and nginx's
# POST req/s with wrk (-t1 -c8 -d5s, 300-byte body). Waggle and the two baseline clients (run before
# any Waggle) pinned to CPU $SERVER_CPU; the fake directory, nginx and curl to CPU $CLIENT_CPU.
# Knobs: USERS (10000), N_GROUPS (1000), CONCS ("8 32"), VARIANTS ("live after"), AFTER_SCHEDULE_MS
# (200), DRAIN_TIMEOUT (600 s), WAGGLE_BIN, BENCH_TARGET_DIR.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
USERS="${USERS:-10000}"
GROUPS_N="${N_GROUPS:-1000}"
CONCS="${CONCS:-8 32}"
VARIANTS="${VARIANTS:-live after}"
AFTER_SCHEDULE_MS="${AFTER_SCHEDULE_MS:-200}"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-600}"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
ADMIN_AUTH="$(printf 'admin:bench-secret' | base64)"
EXPECTED=$((GROUPS_N + 2 * USERS))

header
echo "directory: $USERS users, $GROUPS_N groups; expected events on the first sync: $EXPECTED"

NCP="$(free_port)"
taskset -c "$CLIENT_CPU" "$PY" "$HERE/fake_directory.py" serve "$HOST" "$NCP" --users "$USERS" --groups "$GROUPS_N" \
    >"$TMP/fake.out" 2>&1 &
PIDS+=($!)
wait_http "http://$HOST:$NCP/ocs/v2.php/cloud/capabilities"

NGINX_BODY='    server {
        listen 127.0.0.1:%PORT%;
        location = /waggle/v1/events { return 204; }
        location / { return 404; }
    }'
nginx_on() { # name port -> sets NGPID (pinned to the client CPU, away from Waggle)
    SERVER_CPU="$CLIENT_CPU" start_nginx "$1" "${NGINX_BODY//%PORT%/$2}"
    wait_http "http://$HOST:$2/waggle/v1/events" -X POST -d '{}'
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
admin_curl() { curl -sS --max-time "${MAXT:-10}" -H "AUTHORIZATION-APP-API: $ADMIN_AUTH" -H 'EX-APP-ID: waggle' "$@"; }
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1"; }

# --- baselines -------------------------------------------------------------------------------------
echo
echo "== baseline: fake directory paged directly (python http.client, limit 500) | load $(load)"
run_bg taskset -c "$SERVER_CPU" "$PY" "$HERE/fake_directory.py" page "$HOST" "$NCP" --limit 500 --expect "$USERS" | tee "$TMP/page.out"
DIR_MS="$(sed -n 's/^RESULT //p' "$TMP/page.out" | jget ms)"

BASEP="$(free_port)"
nginx_on nginx-base "$BASEP"
BASE_NG=$NGPID
echo "== baseline: nginx POST /waggle/v1/events, wrk -t1 -c8 -d5s, 300-byte body | load $(load)"
run_bg taskset -c "$SERVER_CPU" wrk -t1 -c8 -d5s --latency -s "$HERE/post300.lua" "http://$HOST:$BASEP/waggle/v1/events" >"$TMP/wrk.out"
cat "$TMP/wrk.out"
NGINX_RPS="$(awk '/^Requests\/sec/{printf "%.0f", $2}' "$TMP/wrk.out")"
grep -q 'Non-2xx' "$TMP/wrk.out" && { echo "nginx baseline answered non-2xx" >&2; exit 1; }
stop_pid "$BASE_NG"

# --- Waggle variants -------------------------------------------------------------------------------
ROWS=()
SECOND=""
for conc in $CONCS; do
    for variant in $VARIANTS; do
        name="w-$variant-c$conc"
        echo
        echo "== $name: concurrency $conc, nginx $([[ $variant == live ]] && echo 'up before the sync' || echo 'started after the reconcile') | load $(load)"
        WP="$(free_port)"; UP="$(free_port)"
        extra=(WAGGLE_SYNC__ADMIN_UID=admin WAGGLE_SERVER__LIFECYCLE_TIMEOUT_SECS=600 WAGGLE_EVENTS__CONCURRENCY="$conc")
        if [[ "$variant" == after ]]; then
            sched="$(printf "$AFTER_SCHEDULE_MS,%.0s" $(seq 300))"
            extra+=(WAGGLE_EVENTS__SCHEDULE_MS="${sched%,}")
        else
            nginx_on "ng-$name" "$UP"
        fi
        start_waggle "$WP" "$NCP" "$UP" "$name" "${extra[@]}"
        W=$WPID
        wait_http "http://$HOST:$WP/heartbeat"
        echo "idle VmRSS/VmHWM MiB: $(mem "$W")"
        t0="$(now_ms)"
        MAXT=600 run_bg admin_curl -X POST "http://$HOST:$WP/admin/sync" >"$TMP/$name.sync.json"
        t1="$(now_ms)"
        echo "sync answer: $(cat "$TMP/$name.sync.json")"
        grep -q '"reconcile"' "$TMP/$name.sync.json" || { echo "sync failed" >&2; exit 1; }
        rec_ms="$(jget reconcile.duration_ms <"$TMP/$name.sync.json")"
        events="$(jget reconcile.events <"$TMP/$name.sync.json")"
        [[ "$events" == "$EXPECTED" ]] || echo "WARNING: $events events, expected $EXPECTED" >&2
        hwm_rec="$(mem "$W" | cut -d' ' -f2)"
        echo "reconcile: ${rec_ms} ms (Waggle), $((t1 - t0)) ms (curl wall), $events events, VmHWM ${hwm_rec} MiB | load $(load)"
        st="$(admin_curl "http://$HOST:$WP/admin/events")"
        depth0="$(jget queue.depth <<<"$st")"
        echo "queue depth at the end of the reconcile: $depth0"
        ts="$t1"
        if [[ "$variant" == after ]]; then
            nginx_on "ng-$name" "$UP"
            ts="$(now_ms)"
        fi
        c0="$(cpu_ticks)"
        depth="$depth0"; last=""
        for _ in $(seq $((DRAIN_TIMEOUT * 20))); do
            st="$(admin_curl "http://$HOST:$WP/admin/events")"
            depth="$(jget queue.depth <<<"$st")"
            [[ "$depth" == 0 ]] && break
            sleep 0.05
        done
        td="$(now_ms)"
        [[ "$depth" == 0 ]] || { echo "queue did not drain in ${DRAIN_TIMEOUT}s (depth $depth)" >&2; exit 1; }
        drain_ms=$((td - ts))
        dead="$(jget queue.dead_letters <<<"$st")"
        echo "drained: $st"
        hwm="$(mem "$W" | cut -d' ' -f2)"
        if [[ "$variant" == after ]]; then
            delivered="$events"   # nothing could be acked before nginx was up
            eps="$(awk -v n="$delivered" -v ms="$drain_ms" 'BEGIN{printf "%.0f", n*1000/ms}')"
        else
            delivered="$depth0"   # the events still queued when the reconcile ended
            eps="$(awk -v n="$depth0" -v ms="$drain_ms" 'BEGIN{ if (ms>0) printf "%.0f", n*1000/ms; else print "n/a" }')"
            eps_total="$(awk -v n="$events" -v ms="$((td - t0))" 'BEGIN{printf "%.0f", n*1000/ms}')"
            echo "whole run (sync start to depth 0): $((td - t0)) ms, $eps_total events/s"
        fi
        echo "delivery: $drain_ms ms to depth 0 after $([[ $variant == live ]] && echo 'the reconcile' || echo 'nginx start') ($delivered events left then), $eps events/s, dead letters $dead, CPU busy $(busy_since "$c0") %, VmHWM $hwm MiB | load $(load)"
        if [[ -z "$SECOND" && "$variant" == live ]]; then
            t0="$(now_ms)"
            MAXT=600 run_bg admin_curl -X POST "http://$HOST:$WP/admin/sync" >"$TMP/$name.sync2.json"
            t1="$(now_ms)"
            echo "second sync (no change): $(cat "$TMP/$name.sync2.json") curl wall $((t1 - t0)) ms | load $(load)"
            SECOND="$(jget reconcile.duration_ms <"$TMP/$name.sync2.json") ms, $(jget reconcile.events <"$TMP/$name.sync2.json") events"
            hwm="$(mem "$W" | cut -d' ' -f2)"
        fi
        ROWS+=("$variant c=$conc | reconcile ${rec_ms} ms | $events events | depth at end ${depth0} | drain ${drain_ms} ms | ${eps} ev/s | dead ${dead} | VmHWM ${hwm_rec} MiB (after reconcile), ${hwm} MiB (end) | load $(load)")
        stop_pid "$W"
        stop_pid "$NGPID"
    done
done

echo
echo "== summary ($(date -u '+%H:%M:%SZ'), load $(load))"
echo "fake directory paged directly: $DIR_MS ms for $USERS users"
echo "nginx POST 300 B (wrk -t1 -c8 -d5s): $NGINX_RPS req/s"
echo "second sync, no change: $SECOND"
printf '%s\n' "${ROWS[@]}"
