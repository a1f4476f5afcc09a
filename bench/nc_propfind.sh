#!/usr/bin/env bash
# /nc callback proxy benchmark: signed PROPFIND callbacks through Waggle `/nc` vs PROPFIND straight to
# the fake Nextcloud, in one run, loopback only.
#
#   fake Nextcloud  nginx (1 worker): capabilities JSON; `location /remote.php/dav/files/alice/ { return
#                   207 '<multistatus/>'; }` (return answers any method).
#   direct          wrk -> nginx: PROPFIND /remote.php/dav/files/alice/, Depth: 1
#   waggle          wrk -> Waggle POST /nc/remote.php/dav/files/alice/ + X-HTTP-Method-Override: PROPFIND,
#                   each request pre-signed by bench/nc_sign.py (PROTOCOL.md §5, own nonce, created = just
#                   before the round) and replayed exactly once by bench/nc_propfind.lua; Waggle verifies
#                   the signature, checks the nonce cache and policy, writes its audit record and forwards
#                   PROPFIND to the fake Nextcloud.
# Correctness first: one pre-signed request through curl must give 207, the same one replayed 401, and
# `waggle nc-call --direct` 207. Per round (ROUNDS, default 3, order alternated): wrk `-t1 -c$CONNS
# -d$WRK_DURATION --latency`; medians. Any non-2xx (e.g. a replayed nonce because the pre-signed set ran
# out) aborts the run. The replay cache is raised (WAGGLE_CALLBACK__REPLAY_CAPACITY=$REPLAY_CAPACITY) so
# that 3 rounds of unique nonces fit in it (the default 100,000 answers 503 once full of live nonces).
# Knobs: ROUNDS, WRK_DURATION (10s), CONNS (16), SIGNED (pre-signed requests per round, 300000: more than Waggle answers in WRK_DURATION, or wrk would replay nonces).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WRK_DURATION="${WRK_DURATION:-10s}"
CONNS="${CONNS:-16}"
SIGNED="${SIGNED:-300000}"
REPLAY_CAPACITY="${REPLAY_CAPACITY:-2000000}"
source "$HERE/lib.sh"
export WAGGLE_TENANT_KEY="$TENANT_KEY" WAGGLE_TENANT_KEY_ID="$TENANT_KEY_ID"

echo "== waggle /nc PROPFIND benchmark =="
header
"$PY" "$HERE/nc_sign.py" selftest

NC="$(free_port)"; WP="$(free_port)"
chmod 755 "$TMP"
start_nginx fakenc "
    server {
        listen $HOST:$NC;
        location = /ocs/v2.php/cloud/capabilities { default_type application/json; return 200 '$CAPS_JSON'; }
        location /remote.php/dav/files/alice/ { default_type 'application/xml; charset=utf-8'; return 207 '<multistatus/>'; }
    }"
start_waggle "$WP" "$NC" 9 waggle WAGGLE_CALLBACK__REPLAY_CAPACITY="$REPLAY_CAPACITY"
AUTH=(-H "AUTHORIZATION-APP-API: $APPAPI_AUTH" -H "EX-APP-ID: waggle")
wait_http "http://$HOST:$NC/ocs/v2.php/cloud/capabilities"
wait_http "http://$HOST:$WP/heartbeat"
echo "fake Nextcloud nginx pid $NGPID :$NC, waggle pid $WPID :$WP"

# --- correctness ---
T=/remote.php/dav/files/alice/
"$PY" "$HERE/nc_sign.py" headers --method POST --override PROPFIND --target "$T" >"$TMP/one.h"
code="$(curl -s -o "$TMP/one.body" -w '%{http_code}' "${AUTH[@]}" -H @"$TMP/one.h" -H 'Depth: 1' -X POST "http://$HOST:$WP/nc$T")"
echo "check: pre-signed PROPFIND via /nc -> $code ($(head -c 60 "$TMP/one.body"))"
[[ "$code" == 207 ]] || { cat "$TMP/one.h"; tail -5 "$TMP/waggle.err"; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -H @"$TMP/one.h" -H 'Depth: 1' -X POST "http://$HOST:$WP/nc$T")"
echo "check: same request replayed -> $code (401 expected)"
[[ "$code" == 401 ]] || exit 1
code="$(env APP_SECRET=bench-secret APP_ID=waggle timeout 30 "$WAGGLE_BIN" nc-call --url "http://$HOST:$WP" --direct \
    --method PROPFIND --target "$T" --user alice --header 'Depth: 1' 2>"$TMP/nccall.err" | head -c 200 || true)"
echo "check: waggle nc-call --direct PROPFIND -> $(tr '\n' ' ' <<<"$code" | head -c 120) $(tail -2 "$TMP/nccall.err" | tr '\n' ' ')"
code="$(curl -s -o /dev/null -w '%{http_code}' -X PROPFIND -H 'Depth: 1' "http://$HOST:$NC$T")"
echo "check: direct PROPFIND -> $code"; [[ "$code" == 207 ]] || exit 1
read -r RSS0 HWM0 < <(mem "$WPID")

push() { eval "$1+=(\"\$2\")"; }
run_wrk() { # target
    local t="$1" f="$TMP/wrk-$1-$r.txt" args
    if [[ "$t" == direct ]]; then
        args=("http://$HOST:$NC$T" -- direct)
    else
        "$PY" "$HERE/nc_sign.py" propfind --count "$SIGNED" --out "$TMP/signed-$r.txt"
        args=("http://$HOST:$WP/" -- waggle "$TMP/signed-$r.txt")
    fi
    run_bg timeout 90 taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$WRK_DURATION" --latency "${AUTH[@]}" \
        -s "$HERE/nc_propfind.lua" "${args[@]}" >"$f" 2>&1 || { cat "$f" >&2; exit 1; }
    if grep -q 'Non-2xx\|Socket errors' "$f"; then echo "wrk errors for $t:" >&2; cat "$f" >&2; tail -5 "$TMP/waggle.err" >&2; exit 1; fi
    local rps p50 p99 n
    rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"; n="$(awk '/requests in/{print $1}' "$f")"
    p50="$(to_ms "$(awk '/^ +50%/{print $2}' "$f")")"; p99="$(to_ms "$(awk '/^ +99%/{print $2}' "$f")")"
    echo "  wrk $t: $rps req/s ($n requests), p50 $p50 ms, p99 $p99 ms"
    push "R_$t" "$rps"; push "L50_$t" "$p50"; push "L99_$t" "$p99"
    rm -f "$TMP/signed-$r.txt"
}
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then order=(waggle direct); else order=(direct waggle); fi
    echo; echo "-- round $r/$ROUNDS (order: ${order[*]}); loadavg $(load)"
    c0="$(cpu_ticks)"
    for t in "${order[@]}"; do run_wrk "$t"; done
    echo "  phase: loadavg $(load), CPU busy $(busy_since "$c0")%"
done
read -r RSSE HWME < <(mem "$WPID")
kill -0 "$WPID" || { echo "waggle died" >&2; exit 1; }
if [[ -s "$TMP/waggle.err" ]]; then echo "note: waggle wrote to stderr:"; head -5 "$TMP/waggle.err"; fi
med() { local -n a="$1"; median "${a[@]}"; }
echo; echo "== summary: medians over $ROUNDS round(s), wrk -t1 -c$CONNS -d$WRK_DURATION =="
printf '%-16s %12s %12s %12s\n' "" direct waggle "waggle/direct"
for m in R L50 L99; do
    d="$(med "${m}_direct")"; w="$(med "${m}_waggle")"
    case $m in R) lab="req/s";; L50) lab="p50 ms";; L99) lab="p99 ms";; esac
    printf '%-16s %12s %12s %12s\n' "$lab" "$d" "$w" "$(ratio "$w" "$d")"
done
echo "per round req/s direct: ${R_direct[*]} | waggle: ${R_waggle[*]}"
echo "per round p99 ms direct: ${L99_direct[*]} | waggle: ${L99_waggle[*]}"
echo "waggle RSS MiB: after checks $RSS0 (HWM $HWM0), at end $RSSE (HWM $HWME)"
echo "loadavg at end: $(load)"
