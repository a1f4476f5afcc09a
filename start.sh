#!/bin/sh
# Waggle container entrypoint (HaRP style, see docs/DEPLOY.md).
#
# With a HaRP deploy daemon AppAPI injects HP_SHARED_KEY, HP_FRP_ADDRESS and
# HP_FRP_PORT. Waggle then listens on a unix socket only, and frpc tunnels
# HaRP's FRP server (frps) to that socket. This script writes the frpc config,
# keeps frpc running in the background (restarted with backoff) and finally
# execs the real command (default: `waggle`), which keeps this PID: as PID 1
# it receives SIGTERM directly.
#
# Without HP_SHARED_KEY (Docker Socket Proxy, HaRP direct mode, Kubernetes,
# manual install) it only execs the command.
#
# Knobs (all optional; AppAPI sets none of them):
#   WAGGLE_HARP_SOCKET            unix socket waggle listens on    (default /tmp/exapp.sock)
#   WAGGLE_FRP_CERTS_DIR          FRP client TLS material          (default /certs/frp)
#   WAGGLE_FRPC_CONFIG            where the frpc config is written (default /tmp/frpc.toml)
#   WAGGLE_FRPC_BIN               frpc executable                  (default frpc)
#   WAGGLE_FRPC_BACKOFF_MS        first restart delay              (default 1000)
#   WAGGLE_FRPC_BACKOFF_MAX_MS    longest restart delay            (default 30000)
#   WAGGLE_FRPC_STABLE_SECS       a run this long resets the delay (default 60)
#
# Exit codes of its own: 64 bad or missing input, 69 frpc missing. Otherwise the
# command's own status (exec).
#
# The shared key is a secret: it is never echoed, and the config file that
# holds it is created with mode 0600.
set -eu
# Tracing would print the shared key; make sure it is off whatever the caller set.
set +x

log() {
    printf 'start.sh: %s\n' "$*" >&2
}

fail() {
    status=$1
    shift
    log "$*"
    exit "$status"
}

# frpc reads its config file as a Go text/template and only then parses the
# result as TOML. A value therefore goes through two escapes: first for a TOML
# basic string (backslash and double quote), then for the template, where each
# "{{" becomes the action {{"{{"}}, which prints "{{". `checked` must have
# refused control characters before (they are not valid in a basic string).
conf_value() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/{{/{{"{{"}}/g'
}

# Refuses a value that cannot be written into the config, naming the variable
# and never the value.
checked() {
    case "$2" in
        *[[:cntrl:]]*) fail 64 "$1 contains a control character" ;;
    esac
}

is_uint() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
    esac
}

is_port() {
    is_uint "$1" && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

# Seconds as `sleep` takes them, from milliseconds.
ms_to_s() {
    printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000))
}

# Whether a process still runs. `kill -0` alone also succeeds for a zombie, which
# is what the application becomes when start.sh is not PID 1 and its parent has
# not reaped it yet, so the state in /proc decides where there is one.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    stat_line=''
    { read -r stat_line; } 2>/dev/null <"/proc/$1/stat" || return 1
    stat_rest=${stat_line##*) }
    case "$stat_rest" in
        Z* | X*) return 1 ;;
    esac
    return 0
}

if [ "$#" -eq 0 ]; then
    set -- waggle
fi

if [ -z "${HP_SHARED_KEY:-}" ]; then
    log "HP_SHARED_KEY not set: no FRP tunnel, starting $1 directly"
    exec "$@"
fi

socket_path="${WAGGLE_HARP_SOCKET:-/tmp/exapp.sock}"
certs_dir="${WAGGLE_FRP_CERTS_DIR:-/certs/frp}"
config_path="${WAGGLE_FRPC_CONFIG:-/tmp/frpc.toml}"
frpc_bin="${WAGGLE_FRPC_BIN:-frpc}"
backoff_ms="${WAGGLE_FRPC_BACKOFF_MS:-1000}"
backoff_max_ms="${WAGGLE_FRPC_BACKOFF_MAX_MS:-30000}"
stable_secs="${WAGGLE_FRPC_STABLE_SECS:-60}"

frp_address="${HP_FRP_ADDRESS:-}"
frp_port="${HP_FRP_PORT:-}"
# Tolerate "host:port" in HP_FRP_ADDRESS when no separate port is given
# (only for a single colon, so IPv6 literals are left alone).
if [ -z "$frp_port" ]; then
    case "$frp_address" in
        *:*:*) ;;
        *:*)
            frp_port="${frp_address##*:}"
            frp_address="${frp_address%:*}"
            ;;
    esac
fi
frp_port="${frp_port:-8782}"

missing=""
[ -n "$frp_address" ] || missing="$missing HP_FRP_ADDRESS"
[ -n "${APP_ID:-}" ] || missing="$missing APP_ID"
[ -n "${APP_PORT:-}" ] || missing="$missing APP_PORT"
if [ -n "$missing" ]; then
    fail 64 "HP_SHARED_KEY is set but required variables are missing:$missing"
fi
is_port "$frp_port" || fail 64 "HP_FRP_PORT is not a valid port number"
is_port "$APP_PORT" || fail 64 "APP_PORT is not a valid port number"
is_uint "$backoff_ms" || fail 64 "WAGGLE_FRPC_BACKOFF_MS is not a whole number"
is_uint "$backoff_max_ms" || fail 64 "WAGGLE_FRPC_BACKOFF_MAX_MS is not a whole number"
is_uint "$stable_secs" || fail 64 "WAGGLE_FRPC_STABLE_SECS is not a whole number"
[ "$backoff_ms" -ge 1 ] || backoff_ms=1
[ "$backoff_max_ms" -ge "$backoff_ms" ] || backoff_max_ms=$backoff_ms
checked HP_SHARED_KEY "$HP_SHARED_KEY"
checked HP_FRP_ADDRESS "$frp_address"
checked APP_ID "$APP_ID"
checked WAGGLE_HARP_SOCKET "$socket_path"
checked WAGGLE_FRP_CERTS_DIR "$certs_dir"

# Without frpc HaRP can never reach Waggle: stop here, visibly, rather than
# serve a socket nobody connects to.
case "$frpc_bin" in
    */*) [ -f "$frpc_bin" ] && [ -x "$frpc_bin" ] ;;
    *) command -v "$frpc_bin" >/dev/null 2>&1 ;;
esac || fail 69 "frpc not found ($frpc_bin): the image must ship it (HaRP reaches Waggle only through it)"

if [ -d "$certs_dir" ]; then
    log "found $certs_dir: frpc will use TLS"
    tls_block="transport.tls.enable = true
transport.tls.certFile = \"$(conf_value "$certs_dir/client.crt")\"
transport.tls.keyFile = \"$(conf_value "$certs_dir/client.key")\"
transport.tls.trustedCaFile = \"$(conf_value "$certs_dir/ca.crt")\"
transport.tls.serverName = \"harp.nc\""
else
    log "$certs_dir not found: frpc will connect without TLS (HaRP must run with HP_FRP_DISABLE_TLS=true)"
    tls_block="transport.tls.enable = false"
fi

config_dir=$(dirname "$config_path")
mkdir -p "$config_dir"
# Recreate the file so a leftover with wider permissions is not reused, and
# create it under umask 077 so the key is never readable by others, not even briefly.
rm -f "$config_path"
(
    umask 077
    cat >"$config_path" <<EOF
# Generated by start.sh at container start; holds the HaRP shared key.
serverAddr = "$(conf_value "$frp_address")"
serverPort = $frp_port
# Keep retrying when HaRP is not up yet (nextcloud/HaRP#29).
loginFailExit = false

$tls_block

metadatas.token = "$(conf_value "$HP_SHARED_KEY")"

[[proxies]]
name = "$(conf_value "$APP_ID")"
type = "tcp"
remotePort = $APP_PORT

[proxies.plugin]
type = "unix_domain_socket"
unixPath = "$(conf_value "$socket_path")"
EOF
)
chmod 0600 "$config_path"
log "frpc config written to $config_path (tunnel $APP_ID -> $socket_path, FRP server $frp_address:$frp_port)"

# The frpc supervisor. `exec` below gives this shell's PID to the application,
# so the supervisor watches that PID: it restarts frpc after any exit (with a
# doubling delay, reset after a run of WAGGLE_FRPC_STABLE_SECS), and stops frpc
# and itself once the application is gone. Without the watch frpc would outlive
# Waggle whenever start.sh is not PID 1 (as PID 1 the container ends with it).
app_pid=$$
(
    delay_ms=$backoff_ms
    while alive "$app_pid"; do
        started=$(date +%s)
        "$frpc_bin" -c "$config_path" &
        frpc_pid=$!
        (
            while alive "$app_pid" && alive "$frpc_pid"; do
                sleep 1
            done
            kill "$frpc_pid" 2>/dev/null || true
        ) &
        watcher_pid=$!
        status=0
        wait "$frpc_pid" || status=$?
        kill "$watcher_pid" 2>/dev/null || true
        alive "$app_pid" || break
        ran=$(($(date +%s) - started))
        if [ "$ran" -ge "$stable_secs" ]; then
            delay_ms=$backoff_ms
        fi
        log "frpc exited with status $status after $ran s; restarting in $(ms_to_s "$delay_ms") s"
        # Sleep in steps of at most a second, so an exit of the application ends the wait.
        left_ms=$delay_ms
        while [ "$left_ms" -gt 0 ] && alive "$app_pid"; do
            step_ms=$left_ms
            [ "$step_ms" -le 1000 ] || step_ms=1000
            sleep "$(ms_to_s "$step_ms")"
            left_ms=$((left_ms - step_ms))
        done
        delay_ms=$((delay_ms * 2))
        [ "$delay_ms" -le "$backoff_max_ms" ] || delay_ms=$backoff_max_ms
    done
) &

log "starting $1"
exec "$@"
