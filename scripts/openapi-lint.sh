#!/usr/bin/env bash
# Lints the OpenAPI document the service publishes with Redocly's
# `recommended` ruleset and Spectral's `spectral:oas`: 0 errors and
# 0 warnings, or the script fails. The document is the one `ami serve`
# answers at /api/v1/openapi.json, printed by `ami workflow openapi`.
#
#   scripts/openapi-lint.sh                 # the embedded definition
#   AMI_WORKFLOW=my.toml scripts/openapi-lint.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LINT="$ROOT/tests/openapi-lint"
log() { printf '[openapi-lint.sh] %s\n' "$*" >&2; }

if [ ! -x "$LINT/node_modules/.bin/redocly" ] || [ ! -x "$LINT/node_modules/.bin/spectral" ]; then
    log "installing @redocly/cli and @stoplight/spectral-cli"
    (cd "$LINT" && npm ci --ignore-scripts --no-audit --no-fund)
fi

if [ -z "${AMI_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --quiet -p ami-service --bin ami)
    AMI_BIN="$TARGET_DIR/debug/ami"
fi
mkdir -p "$TARGET_DIR/openapi-lint"
DOC="$TARGET_DIR/openapi-lint/openapi.json"
"$AMI_BIN" workflow openapi >"$DOC"
log "document: $DOC ($(wc -c <"$DOC") bytes)"

STATUS=0
echo "=== Redocly (recommended) ==="
# Redocly exits 0 on warnings: its summary line says how many there were.
REDOCLY_OUT="$TARGET_DIR/openapi-lint/redocly.txt"
(cd "$LINT" && node_modules/.bin/redocly lint --config redocly.yaml --max-problems 1000 "$DOC") >"$REDOCLY_OUT" 2>&1 || STATUS=1
grep -v '[║╔╚]' "$REDOCLY_OUT"
if grep -qE 'You have [0-9]+ warning' "$REDOCLY_OUT"; then STATUS=1; fi
echo "=== Spectral (spectral:oas) ==="
(cd "$LINT" && node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity warn "$DOC") || STATUS=1
[ "$STATUS" -eq 0 ] && echo "result:   PASS (Redocly and Spectral: 0 errors, 0 warnings)" || echo "result:   FAIL"
exit "$STATUS"
