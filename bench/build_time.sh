#!/usr/bin/env bash
# Clean build times of waggle: `cargo build --release --locked` and `cargo build --locked` (debug),
# each into a FRESH temporary CARGO_TARGET_DIR (so nothing is reused and the developer's target/ and
# build lock are untouched), timed with GNU time -v (wall clock and max RSS of the biggest process).
#
# The crates must already be in the cargo registry cache (run `cargo fetch --locked` once before):
# the figures are then compile + link time only, no download. `--offline` is passed to make sure.
# The load average (1/5/15 min) is printed at the start and end of each build: another build running
# on the machine at the same time makes the numbers meaningless, so check it.
#
# Environment: BUILDS="release debug" (default both), BUILD_TIMEOUT=1800 (seconds, per build).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILDS="${BUILDS:-release debug}"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-1800}"
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time (apt-get install -y time)" >&2; exit 2; }

TMP="$(mktemp -d -t waggle-buildtime.XXXXXX)"
CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$CHILD" ]]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "date: $(date -u '+%Y-%m-%dT%H:%M:%SZ'); nproc=$(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "$(cargo --version); $(rustc --version)"

cd "$ROOT"
for kind in $BUILDS; do
    case "$kind" in
        release) flags=(--release --locked --offline) ;;
        debug) flags=(--locked --offline) ;;
        *) echo "unknown build kind $kind" >&2; exit 2 ;;
    esac
    target="$TMP/target-$kind"
    echo
    echo "== clean $kind build: cargo build ${flags[*]} (CARGO_TARGET_DIR=$target) =="
    echo "loadavg at start: $(load)"
    set +e
    # timeout puts itself and the build in their own process group and forwards SIGTERM to all of it
    CARGO_TARGET_DIR="$target" timeout "$BUILD_TIMEOUT" /usr/bin/time -v -o "$TMP/time-$kind.txt" \
        cargo build "${flags[@]}" >"$TMP/cargo-$kind.log" 2>&1 &
    CHILD=$!
    wait "$CHILD"; rc=$?
    CHILD=""
    set -e
    echo "loadavg at end:   $(load)"
    if [[ $rc -ne 0 ]]; then tail -30 "$TMP/cargo-$kind.log" >&2; echo "build failed (rc=$rc)" >&2; exit 1; fi
    grep -E 'Elapsed \(wall clock\)|Maximum resident set size|User time|System time|Percent of CPU' "$TMP/time-$kind.txt" | sed 's/^\s*/  /'
    grep -E '^\s*Finished' "$TMP/cargo-$kind.log" | sed 's/^\s*/  cargo: /'
    bin="$target/$kind/waggle"
    [[ -f "$bin" ]] && echo "  binary: $(stat -c %s "$bin") bytes ($(awk -v b="$(stat -c %s "$bin")" 'BEGIN{printf "%.2f", b/1048576}') MiB)"
    echo "  target dir size: $(du -sh "$target" | cut -f1)"
    rm -rf "$target"
done
