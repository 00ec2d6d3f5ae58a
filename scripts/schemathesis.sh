#!/usr/bin/env bash
# Runs Schemathesis (property-based API testing from the OpenAPI document)
# against a real `ami serve` over a fresh temporary SQLite database.
#
#   scripts/schemathesis.sh            # 30 examples per operation
#   MAX_EXAMPLES=100 scripts/schemathesis.sh
#   CHECKS=not_a_server_error scripts/schemathesis.sh
#
# Schemathesis is installed from PyPI into a venv under target/ the first
# time. Exits non-zero when a check fails, the server does not start or the
# run does not finish within its time budget (170 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET_DIR/schemathesis/venv"
MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
CHECKS="${CHECKS:-not_a_server_error,response_schema_conformance}"
BUDGET="${BUDGET:-170}"

log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }

# 1. Schemathesis, in its own venv.
if [ ! -x "$VENV/bin/st" ]; then
    log "installing schemathesis into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet schemathesis
fi
log "$("$VENV/bin/st" --version)"

# 2. The service.
log "building ami"
(cd "$ROOT" && cargo build --quiet -p ami-service --bin ami)
AMI="$TARGET_DIR/debug/ami"

WORK="$(mktemp -d)"
DB="sqlite://$WORK/ami.db"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"

"$AMI" migrate --database-url "$DB" >/dev/null
TOKEN="$("$AMI" token create --agency dar --role agent --name "Schemathesis Robot" --email schemathesis.robot@lecnam.net --database-url "$DB" | tail -n 1)"
case "$TOKEN" in
    ami_*) ;;
    *) log "could not create a token"; exit 1 ;;
esac

AMI_LOG="${AMI_LOG:-warn}" "$AMI" serve --addr "127.0.0.1:$PORT" --database-url "$DB" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('$BASE/healthz', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server stopped:"; cat "$WORK/server.log" >&2; exit 1
    fi
    sleep 0.1
done
log "ami serving on $BASE (database $DB)"

# 3. Schemathesis. The OpenAPI `servers` entry is relative (/api/v1), so the
# base URL is given explicitly.
set +e
timeout "$BUDGET" "$VENV/bin/st" run "$BASE/api/v1/openapi.json" \
    --url "$BASE/api/v1" \
    --header "Authorization: Bearer $TOKEN" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --seed "${SEED:-20201106}" \
    --generation-database none \
    --no-color \
    --report junit --report-junit-path "$TARGET_DIR/schemathesis/junit.xml" \
    2>&1 | tee "$TARGET_DIR/schemathesis/last-run.txt"
STATUS=${PIPESTATUS[0]}
set -e

if grep -q 'internal error' "$WORK/server.log" 2>/dev/null; then
    log "the server logged internal errors:"; grep 'internal error' "$WORK/server.log" | head -20 >&2
fi

echo
echo "=== schemathesis summary ==="
echo "server:   $BASE (SQLite $WORK/ami.db, removed on exit)"
echo "checks:   $CHECKS"
echo "examples: $MAX_EXAMPLES per operation, time budget ${BUDGET}s"
sed -n '/^Test cases:/{n;s/^ */cases:    /;p}' "$TARGET_DIR/schemathesis/last-run.txt" || true
grep -E '^ *(Scenarios|Operations):' "$TARGET_DIR/schemathesis/last-run.txt" | sed 's/^ */          /' || true
grep -E '^=+ .* in [0-9.]+s =+$' "$TARGET_DIR/schemathesis/last-run.txt" | tail -n 1 || true
case "$STATUS" in
    0) echo "result:   PASS" ;;
    124) echo "result:   FAIL (time budget of ${BUDGET}s exceeded)" ;;
    *) echo "result:   FAIL (schemathesis exit status $STATUS; details above and in target/schemathesis/)" ;;
esac
exit "$STATUS"
