#!/usr/bin/env bash
# Runs Schemathesis (property-based API testing from the OpenAPI document)
# against a real `ami serve` over a fresh temporary SQLite database, with
# every check and every phase (examples, coverage, fuzzing, stateful), once
# as a DAR agent and once as an ACV agent, on the same database.
#
#   scripts/schemathesis.sh            # 30 examples per operation
#   MAX_EXAMPLES=100 scripts/schemathesis.sh
#   CHECKS=not_a_server_error scripts/schemathesis.sh
#
# Schemathesis is installed from PyPI into a venv under target/ the first
# time. Exits non-zero when a check fails, the server does not start, a run
# does not finish within its time budget, or the DAR's run did not reach
# MIN_DEPOSITS (20) successful deposits and MIN_TRANSITIONS (20) successful
# transitions (counted from the recorded exchanges): a run that never gets
# past the business rules would test little. The document's examples (a
# deposit with both files, the next step) and links (each pièce as a PDF,
# the next step) are what let the generator get past them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET_DIR/schemathesis/venv"
MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
CHECKS="${CHECKS:-all}"
BUDGET="${BUDGET:-420}"
MIN_DEPOSITS="${MIN_DEPOSITS:-20}"
MIN_TRANSITIONS="${MIN_TRANSITIONS:-20}"

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
token() {
    local t
    t="$("$AMI" token create --agency "$1" --role agent --name "Robot $1" --email "robot.$1@example.org" --database-url "$DB" | tail -n 1)"
    case "$t" in
        ami_*) echo "$t" ;;
        *) log "could not create a token for $1"; exit 1 ;;
    esac
}
TOKEN_DAR="$(token dar)"
TOKEN_ACV="$(token acv)"

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

# 3. Schemathesis, once per agency. The OpenAPI `servers` entry is
# relative (/api/v1), so the base URL is given explicitly.
OUT="$TARGET_DIR/schemathesis"
run_as() {
    local who="$1" token="$2"
    timeout "$BUDGET" "$VENV/bin/st" --config-file "$ROOT/tests/schemathesis/schemathesis.toml" \
        run "$BASE/api/v1/openapi.json" \
        --url "$BASE/api/v1" \
        --header "Authorization: Bearer $token" \
        --checks "$CHECKS" \
        --phases "${PHASES:-examples,coverage,fuzzing,stateful}" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --seed "${SEED:-20201106}" \
        --generation-database none \
        --no-color \
        --report junit,har \
        --report-junit-path "$OUT/junit-$who.xml" \
        --report-har-path "$OUT/exchanges-$who.har" \
        2>&1 | tee "$OUT/last-run-$who.txt"
    return "${PIPESTATUS[0]}"
}

set +e
run_as dar "$TOKEN_DAR"; STATUS_DAR=$?
run_as acv "$TOKEN_ACV"; STATUS_ACV=$?
set -e

if grep -q 'internal error' "$WORK/server.log" 2>/dev/null; then
    log "the server logged internal errors:"; grep 'internal error' "$WORK/server.log" | head -20 >&2
fi

# Successful writes in the DAR's run, from its recorded exchanges.
read -r DEPOSITS TRANSITIONS < <(python3 - "$OUT/exchanges-dar.har" <<'PY'
import json, re, sys
try:
    entries = json.load(open(sys.argv[1]))["log"]["entries"]
except (OSError, ValueError):
    entries = []  # the run did not finish its record: nothing counted
def ok(method, pattern):
    return sum(1 for e in entries
               if e["request"]["method"] == method
               and re.search(pattern, e["request"]["url"].split("?")[0])
               and 200 <= e["response"]["status"] < 300)
print(ok("POST", r"/api/v1/dossiers$"), ok("POST", r"/api/v1/dossiers/[^/]+/transitions$"))
PY
)

echo
echo "=== schemathesis summary ==="
echo "server:   $BASE (SQLite $WORK/ami.db, removed on exit)"
echo "checks:   $CHECKS; phases examples, coverage, fuzzing, stateful"
echo "examples: $MAX_EXAMPLES per operation, time budget ${BUDGET}s per agency"
STATUS=0
for who in dar acv; do
    file="$OUT/last-run-$who.txt"
    cases="$(sed -n '/^Test cases:/{n;s/^ *//;p}' "$file" | head -n 1)"
    echo "$who:      ${cases:-no summary}"
done
echo "2xx:      $DEPOSITS deposits (POST /dossiers), $TRANSITIONS transitions (POST /dossiers/{id}/transitions), as DAR"
for pair in "dar:$STATUS_DAR" "acv:$STATUS_ACV"; do
    who="${pair%%:*}"; st="${pair#*:}"
    case "$st" in
        0) ;;
        124) echo "result:   FAIL ($who: time budget of ${BUDGET}s exceeded)"; STATUS=1 ;;
        *) echo "result:   FAIL ($who: schemathesis exit status $st; details above and in $OUT/)"; STATUS=1 ;;
    esac
done
if [ "$DEPOSITS" -lt "$MIN_DEPOSITS" ] || [ "$TRANSITIONS" -lt "$MIN_TRANSITIONS" ]; then
    echo "result:   FAIL (fewer than $MIN_DEPOSITS successful deposits or $MIN_TRANSITIONS transitions)"
    STATUS=1
fi
[ "$STATUS" -eq 0 ] && echo "result:   PASS"
exit "$STATUS"
