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
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
pinned_venv "$VENV" openapi-python-client "$OPC_VERSION"
installed() { venv_version "$VENV" openapi-python-client; }
log "openapi-python-client $(installed)"

# 2. The service.
# shellcheck source=scripts/lib/serve.sh
. "$ROOT/scripts/lib/serve.sh"
ami_binary
ami_workdir
# The DAR agent deposits and instructs; the four-eyes rule wants another
# person, a DAR responsable, to declare the dossier lauréat.
AMI_DAR_AGENT="$(ami_token dar agent "Camille Martin" camille.martin@lecnam.net)"
AMI_DAR_RESPONSABLE="$(ami_token dar responsable "Dominique Bernard" dominique.bernard@lecnam.net)"
AMI_ACV_AGENT="$(ami_token acv agent "Alix Petit" alix.petit@anct.gouv.fr)"
AMI_TI_AGENT="$(ami_token ti agent "Sacha Leroy" sacha.leroy@anct.gouv.fr)"
export AMI_DAR_AGENT AMI_DAR_RESPONSABLE AMI_ACV_AGENT AMI_TI_AGENT
ami_serve

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

if ami_internal_errors; then
    [ "$STATUS" -ne 0 ] || STATUS=1
fi

echo
echo "=== generated client summary ==="
echo "server:    $BASE (SQLite $WORK/ami.db, removed on exit)"
echo "generator: openapi-python-client $(installed), warnings: $WARNINGS"
echo "time:      $((SECONDS - START)) s"
if [ "$STATUS" -eq 0 ]; then echo "result:    PASS"; else echo "result:    FAIL (drive.py exit status $STATUS)"; fi
exit "$STATUS"
