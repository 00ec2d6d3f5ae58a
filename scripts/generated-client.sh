#!/usr/bin/env bash
# Generates a Python client from the service's own OpenAPI document
# (openapi-python-client) and drives one dossier from deposit to lauréat
# with it, typed errors included (tests/generated-client/drive.py), against
# a real `ami serve` over a fresh temporary SQLite database.
#
#   scripts/generated-client.sh                      # builds ami with cargo
#   AMI_BIN=target/debug/ami scripts/generated-client.sh
#   ALLOW_WARNINGS=1 scripts/generated-client.sh     # generator warnings do not fail
#   ALLOW_TYPE_DEFECTS=1 scripts/generated-client.sh # nor do the type defects drive.py finds
#   KEEP_WORK=1 scripts/generated-client.sh          # keeps the document and the generated client
#
# openapi-python-client is installed from PyPI into a venv under target/ the
# first time; its configuration is tests/generated-client/config.yml. Exits
# non-zero when the generator warns about the document (a warning means an
# endpoint or an answer skipped, or a type degraded to `Any`), when the
# generated client cannot drive the dossier, when it types what the document
# should have typed as a plain string, an untyped object or a list of
# integers for a file (drive.py lists them), or when the server does not
# start.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET_DIR/generated-client/venv"
ALLOW_WARNINGS="${ALLOW_WARNINGS:-0}"
START=$SECONDS

log() { printf "[generated-client.sh %3ds] %s\n" "$((SECONDS - START))" "$*" >&2; }

# 1. openapi-python-client, in its own venv (the generated client runs there
# too: it needs httpx and attrs, which the generator depends on). Pinned:
# another version may name or type things otherwise.
OPC_VERSION="${OPC_VERSION:-0.29.1}"
installed() { "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))' 2>/dev/null || true; }
if [ "$(installed)" != "$OPC_VERSION" ]; then
    log "installing openapi-python-client $OPC_VERSION into $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "openapi-python-client==$OPC_VERSION"
fi
log "openapi-python-client $(installed)"

# 2. The service.
if [ -n "${AMI_BIN:-}" ]; then
    AMI="$AMI_BIN"
    log "using $AMI"
else
    log "building ami"
    (cd "$ROOT" && cargo build --quiet -p ami-service --bin ami)
    AMI="$TARGET_DIR/debug/ami"
fi

WORK="$(mktemp -d)"
DB="sqlite://$WORK/ami.db"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK (the document, the client, the server's log)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"

log "temporary database in $WORK"
"$AMI" migrate --database-url "$DB" >/dev/null
token() { # agency role name email
    local t
    t="$("$AMI" token create --agency "$1" --role "$2" --name "$3" --email "$4" --database-url "$DB" | tail -n 1)"
    case "$t" in
        ami_*) printf '%s' "$t" ;;
        *) log "could not create a token for $3"; exit 1 ;;
    esac
}
# The DAR agent deposits and instructs; the four-eyes rule wants another
# person, a DAR responsable, to declare the dossier lauréat.
AMI_DAR_AGENT="$(token dar agent "Camille Martin" camille.martin@lecnam.net)"
AMI_DAR_RESPONSABLE="$(token dar responsable "Dominique Bernard" dominique.bernard@lecnam.net)"
AMI_ACV_AGENT="$(token acv agent "Alix Petit" alix.petit@anct.gouv.fr)"
AMI_TI_AGENT="$(token ti agent "Sacha Leroy" sacha.leroy@anct.gouv.fr)"
export AMI_DAR_AGENT AMI_DAR_RESPONSABLE AMI_ACV_AGENT AMI_TI_AGENT

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

# 3. The client, generated from the document the service serves.
python3 -c "import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen('$BASE/api/v1/openapi.json', timeout=10).read())" \
    >"$WORK/openapi.json"
mkdir -p "$WORK/client"
set +e
(cd "$WORK" && "$VENV/bin/openapi-python-client" generate \
    --path "$WORK/openapi.json" --output-path "$WORK/client/ami_client" --meta none \
    --config "$ROOT/tests/generated-client/config.yml") \
    >"$WORK/generate.log" 2>&1
GEN_STATUS=$?
set -e
cat "$WORK/generate.log" >&2
if [ "$GEN_STATUS" -ne 0 ] || [ ! -f "$WORK/client/ami_client/__init__.py" ]; then
    log "openapi-python-client failed (exit status $GEN_STATUS)"; exit 1
fi
WARNINGS=0
if grep -qi 'warning' "$WORK/generate.log"; then
    WARNINGS=1
    if [ "$ALLOW_WARNINGS" = 1 ]; then
        log "openapi-python-client warned about the document (above); going on (ALLOW_WARNINGS=1)"
    else
        log "openapi-python-client warned about the document (above): an endpoint skipped or a type degraded"
        exit 1
    fi
fi
log "client generated: $(find "$WORK/client/ami_client/api" -name '*.py' ! -name '__init__.py' | wc -l) operations, $(find "$WORK/client/ami_client/models" -name '*.py' ! -name '__init__.py' | wc -l) models"

# 4. The dossier, driven with the generated client only.
set +e
PYTHONPATH="$WORK/client" AMI_BASE_URL="$BASE/api/v1" AMI_OPENAPI="$WORK/openapi.json" AMI_EXAMPLES="$ROOT/docs/examples" \
    "$VENV/bin/python" "$ROOT/tests/generated-client/drive.py"
STATUS=$?
log "drive.py done (exit status $STATUS)"
set -e

if grep -q 'internal error' "$WORK/server.log" 2>/dev/null; then
    log "the server logged internal errors:"; grep 'internal error' "$WORK/server.log" | head -20 >&2
    [ "$STATUS" -ne 0 ] || STATUS=1
fi

echo
echo "=== generated client summary ==="
echo "server:    $BASE (SQLite $WORK/ami.db, removed on exit)"
echo "generator: openapi-python-client $(installed), warnings: $WARNINGS"
echo "time:      $((SECONDS - START)) s"
if [ "$STATUS" -eq 0 ]; then echo "result:    PASS"; else echo "result:    FAIL (drive.py exit status $STATUS)"; fi
exit "$STATUS"
