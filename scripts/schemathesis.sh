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

# 1. Schemathesis, in its own venv. Pinned: another version generates other
# cases, and the figures in docs/api.md are this one's.
ST_VERSION="${ST_VERSION:-4.32.5}"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
pinned_venv "$VENV" schemathesis "$ST_VERSION"
log "$("$VENV/bin/st" --version)"

# 2. The service.
# shellcheck source=scripts/lib/serve.sh
. "$ROOT/scripts/lib/serve.sh"
ami_binary
ami_workdir
TOKEN_DAR="$(ami_token dar agent "Robot dar" robot.dar@example.org)"
TOKEN_ACV="$(ami_token acv agent "Robot acv" robot.acv@example.org)"
ami_serve

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

ami_internal_errors || true

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
