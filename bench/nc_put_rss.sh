#!/usr/bin/env bash
# /nc upload memory benchmark: a 256 MiB PUT callback through Waggle `/nc` (pre-signed with
# bench/nc_sign.py: PUT, Content-Digest of the file, Content-Type covered), Waggle's VmRSS sampled every
# 100 ms during the transfer; vs the same PUT straight to the fake Nextcloud. Loopback only.
#
#   fake Nextcloud  nginx (1 worker): capabilities JSON; /remote.php/dav/files/alice/bench-upload.bin ->
#                   proxy_pass (streamed, proxy_request_buffering off) to bench/drain_server.py, which
#                   reads the whole body and answers 201 {"bytes": n}.
#   direct          curl -T file -> fake Nextcloud
#   waggle          curl -T file -> Waggle /nc (verifies, spools + hashes the body, forwards once the
#                   Content-Digest matches) -> fake Nextcloud
# Per round (ROUNDS, default 3): both uploads (order alternated); medians of MB/s. RSS: per-round
# min/max of the samples taken while Waggle's upload ran, and VmHWM before/after.
# Knobs: ROUNDS, PUT_MIB (256), WAGGLE_BIN, BENCH_TARGET_DIR.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PUT_MIB="${PUT_MIB:-256}"
source "$HERE/lib.sh"
export WAGGLE_TENANT_KEY="$TENANT_KEY" WAGGLE_TENANT_KEY_ID="$TENANT_KEY_ID"

echo "== waggle /nc PUT memory benchmark =="
header
NC="$(free_port)"; WP="$(free_port)"; SINK="$(free_port)"
chmod 755 "$TMP"
FILE="$TMP/put.bin"; truncate -s "${PUT_MIB}M" "$FILE"; BYTES=$((PUT_MIB * 1024 * 1024))
T=/remote.php/dav/files/alice/bench-upload.bin
start_sink "$SINK"
start_nginx fakenc "
    upstream sink { server $HOST:$SINK; keepalive 8; }
    server {
        listen $HOST:$NC;
        client_max_body_size 8g;
        location = /ocs/v2.php/cloud/capabilities { default_type application/json; return 200 '$CAPS_JSON'; }
        location = $T {
            proxy_pass http://sink;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
            proxy_read_timeout 300s; proxy_send_timeout 300s;
        }
    }"
start_waggle "$WP" "$NC" 9 waggle
AUTH=(-H "AUTHORIZATION-APP-API: $APPAPI_AUTH" -H "EX-APP-ID: waggle")
wait_http "http://$HOST:$SINK/"
wait_http "http://$HOST:$WP/heartbeat"
echo "fake Nextcloud nginx pid $NGPID :$NC, sink pid $SINKPID :$SINK, waggle pid $WPID :$WP; file ${PUT_MIB} MiB (sparse)"
read -r RSS0 HWM0 < <(mem "$WPID")
echo "waggle idle: VmRSS $RSS0 MiB, VmHWM $HWM0 MiB"

sample_rss() { for _ in $(seq 3000); do rss_kib "$1" >>"$2" || break; sleep 0.1; done; }
push() { eval "$1+=(\"\$2\")"; }
put() { # target
    local t="$1" url out code up speed hdr=()
    if [[ "$t" == waggle ]]; then
        "$PY" "$HERE/nc_sign.py" headers --method PUT --target "$T" --body "$FILE" >"$TMP/put.h"
        hdr=(-H @"$TMP/put.h"); url="http://$HOST:$WP/nc$T"
        : >"$TMP/rss-$r.txt"; sample_rss "$WPID" "$TMP/rss-$r.txt" & SAMPLER=$!
    else
        hdr=(-H 'Content-Type: application/octet-stream'); url="http://$HOST:$NC$T"
    fi
    out="$(run_bg timeout 300 taskset -c "$CLIENT_CPU" curl -s "${AUTH[@]}" "${hdr[@]}" -H 'Expect:' -T "$FILE" \
        -o "$TMP/put-$t.json" -w '%{http_code} %{size_upload} %{speed_upload}' "$url")"
    if [[ -n "$SAMPLER" ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; fi
    read -r code up speed <<<"$out"
    [[ "$code" == 201 && "$up" == "$BYTES" ]] && grep -q "\"bytes\": $BYTES" "$TMP/put-$t.json" \
        || { echo "PUT $t: $out $(cat "$TMP/put-$t.json")" >&2; tail -5 "$TMP/waggle.err" >&2; exit 1; }
    local mbs; mbs="$(awk -v s="$speed" 'BEGIN{printf "%.1f", s/1e6}')"
    push "X_$t" "$mbs"
    if [[ "$t" == waggle ]]; then
        local n mn mx; n="$(wc -l <"$TMP/rss-$r.txt")"
        mn="$(sort -n "$TMP/rss-$r.txt" | head -1 | awk '{printf "%.2f", $1/1024}')"
        mx="$(sort -n "$TMP/rss-$r.txt" | tail -1 | awk '{printf "%.2f", $1/1024}')"
        read -r _ hwm < <(mem "$WPID")
        echo "  PUT waggle: $mbs MB/s; VmRSS during upload ($n samples / 100 ms): min $mn, max $mx MiB; VmHWM now $hwm MiB"
        echo "    samples MiB: $(awk '{printf "%.1f ", $1/1024}' "$TMP/rss-$r.txt" | head -c 600)"
        push MN "$mn"; push MX "$mx"; push HW "$hwm"
    else
        echo "  PUT direct: $mbs MB/s"
    fi
}
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then order=(waggle direct); else order=(direct waggle); fi
    echo; echo "-- round $r/$ROUNDS (order: ${order[*]}); loadavg $(load)"
    c0="$(cpu_ticks)"
    for t in "${order[@]}"; do put "$t"; done
    echo "  phase: loadavg $(load), CPU busy $(busy_since "$c0")%"
done
read -r RSSE HWME < <(mem "$WPID")
kill -0 "$WPID" || { echo "waggle died" >&2; exit 1; }
if [[ -s "$TMP/waggle.err" ]]; then echo "note: waggle wrote to stderr:"; head -5 "$TMP/waggle.err"; fi
echo "spool dir after run: $(find "$TMP/waggle-storage" -type f | wc -l) files, $(du -sk "$TMP/waggle-storage" | cut -f1) KiB"
d="$(median "${X_direct[@]}")"; w="$(median "${X_waggle[@]}")"
echo; echo "== summary: medians over $ROUNDS round(s), ${PUT_MIB} MiB PUT =="
echo "upload MB/s: direct $d, waggle /nc $w, ratio waggle/direct $(ratio "$w" "$d")"
echo "per round MB/s direct: ${X_direct[*]} | waggle: ${X_waggle[*]}"
echo "waggle VmRSS during uploads MiB, per round min/max: $(paste -d/ <(printf '%s\n' "${MN[@]}") <(printf '%s\n' "${MX[@]}") | tr '\n' ' ')"
echo "waggle RSS MiB: idle $RSS0 (HWM $HWM0), at end $RSSE (HWM $HWME); growth of VmHWM over idle: $(awk -v a="$HWME" -v b="$HWM0" 'BEGIN{printf "%.2f", a-b}') MiB"
echo "loadavg at end: $(load)"
