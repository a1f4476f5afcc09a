#!/usr/bin/env bash
# RFC 9421 interop check: Waggle's signer/verifier against PyPI http-message-signatures, both ways;
# then Standard Webhooks v1 against PyPI standardwebhooks, both ways.
# Run from the repository root: bash tests/interop/run.sh   (venv: $WAGGLE_VENV or ./.venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${WAGGLE_VENV:-$ROOT/.venv}"
PY_SCRIPT="$ROOT/tests/interop/http_sig_interop.py"
WH_SCRIPT="$ROOT/tests/interop/standard_webhooks.py"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "http-message-signatures==3.0.0" "requests==2.34.2" "standardwebhooks==1.1.0"

cd "$ROOT"
cargo build --quiet --example sig_interop

echo "== Rust signs, Python verifies"
cargo run --quiet --example sig_interop sign > "$WORK/rust.jsonl"
"$VENV/bin/python" "$PY_SCRIPT" verify < "$WORK/rust.jsonl"

echo "== Python signs, Rust verifies"
"$VENV/bin/python" "$PY_SCRIPT" sign > "$WORK/py.jsonl"
cargo run --quiet --example sig_interop verify < "$WORK/py.jsonl"

echo "== Standard Webhooks: Rust signs, Python verifies"
cargo run --quiet --example sig_interop webhooks > "$WORK/wh-rust.jsonl"
"$VENV/bin/python" "$WH_SCRIPT" verify < "$WORK/wh-rust.jsonl"

echo "== Standard Webhooks: Python signs, Rust verifies"
"$VENV/bin/python" "$WH_SCRIPT" sign > "$WORK/wh-py.jsonl"
cargo run --quiet --example sig_interop webhooks-verify < "$WORK/wh-py.jsonl"

echo "interop OK"
