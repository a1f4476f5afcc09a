#!/usr/bin/env bash
# The whole test suite: unit + integration tests (real loopback servers), then the RFC 9421 interop
# check against an independent implementation (PyPI http-message-signatures, in a venv).
set -euo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

bash tests/interop/run.sh
cargo test --locked --all-targets 2>&1 | tee "$log"

# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
