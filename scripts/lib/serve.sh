# Sourced by the scripts that check the service from outside
# (schemathesis.sh, generated-client.sh): a real `ami serve` on a free port
# over a fresh temporary SQLite database, with tokens, stopped and removed
# on exit. The caller defines `log` and sets ROOT and TARGET_DIR.
#
#   ami_binary                 # AMI: $AMI_BIN, or the debug build (built)
#   ami_workdir                # WORK, DB; removed on exit unless KEEP_WORK=1
#   ami_token AGENCY ROLE NAME EMAIL   # prints a new token
#   ami_serve                  # PORT, BASE; waits for /healthz
#   ami_internal_errors        # true when the server logged one (printed)

ami_binary() {
    if [ -n "${AMI_BIN:-}" ]; then
        AMI="$AMI_BIN"
        log "using $AMI"
    else
        log "building ami"
        (cd "$ROOT" && cargo build --quiet -p ami-service --bin ami)
        AMI="$TARGET_DIR/debug/ami"
    fi
}

SERVER_PID=""
ami_cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${WORK:-}" ]; then
        if [ "${KEEP_WORK:-0}" = 1 ]; then
            log "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
}

ami_workdir() {
    WORK="$(mktemp -d)"
    DB="sqlite://$WORK/ami.db"
    trap ami_cleanup EXIT
    "$AMI" migrate --database-url "$DB" >/dev/null
    log "temporary database in $WORK"
}

ami_token() {
    local t
    t="$("$AMI" token create --agency "$1" --role "$2" --name "$3" --email "$4" --database-url "$DB" | tail -n 1)"
    case "$t" in
        ami_*) printf '%s' "$t" ;;
        *) log "could not create a token for $3"; exit 1 ;;
    esac
}

ami_serve() {
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    BASE="http://127.0.0.1:$PORT"
    AMI_LOG="${AMI_LOG:-warn}" "$AMI" serve --addr "127.0.0.1:$PORT" --database-url "$DB" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('$BASE/healthz', timeout=1)" 2>/dev/null; then
            log "ami serving on $BASE (database $DB)"
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "the server stopped:"; cat "$WORK/server.log" >&2; exit 1
        fi
        sleep 0.1
    done
    log "the server did not answer /healthz within 10 s:"; cat "$WORK/server.log" >&2; exit 1
}

ami_internal_errors() {
    if grep -q 'internal error' "$WORK/server.log" 2>/dev/null; then
        log "the server logged internal errors:"
        grep 'internal error' "$WORK/server.log" | head -20 >&2
        return 0
    fi
    return 1
}
