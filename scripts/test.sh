#!/usr/bin/env bash
# The whole test suite: the RFC 9421 interop check against an independent implementation (PyPI
# http-message-signatures, in a venv); the UI (type check, vitest component tests, and proof that
# the committed bundle web/dist is what web/ builds to); unit + integration tests (real loopback
# servers); then the suite against a real Nextcloud 31 + AppAPI 5.0.2 (tests/real_nextcloud: the kit
# in ../shared/nextcloud, or $WAGGLE_NEXTCLOUD_KIT, and PHP; it fails, never skips, when either is
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

bash tests/interop/run.sh

# npm packages from the registry, pinned by web/package-lock.json; reinstalled when the lock changed.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  npm --prefix web ci --no-audit --no-fund
fi
NO_COLOR=1 npm --prefix web test 2>&1 | tee -a "$log"
npm --prefix web run check-bundle

cargo test --locked --all-targets 2>&1 | tee -a "$log"
# Not part of `cargo test` (it needs PHP and takes about a minute); always part of this script.
cargo test --locked --test real_nextcloud 2>&1 | tee -a "$log"

# One closing line for the whole suite (cargo prints one per test binary, vitest one per run, the
# real suite its own).
awk '/^test result:|^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^real-nextcloud: [0-9]+ passed/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
