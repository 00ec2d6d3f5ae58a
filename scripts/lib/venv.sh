# Sourced by the scripts that run a Python tool from PyPI
# (schemathesis.sh, generated-client.sh). The caller defines `log`.
#
#   pinned_venv VENV PACKAGE VERSION   # VENV holds PACKAGE==VERSION
#   venv_version VENV PACKAGE          # the version VENV holds, or nothing

venv_version() {
    "$1/bin/python" -c "import importlib.metadata as m; print(m.version('$2'))" 2>/dev/null || true
}

pinned_venv() {
    if [ "$(venv_version "$1" "$2")" != "$3" ]; then
        log "installing $2 $3 into $1"
        mkdir -p "$(dirname "$1")"
        python3 -m venv "$1"
        "$1/bin/pip" install --quiet --upgrade pip
        "$1/bin/pip" install --quiet "$2==$3"
    fi
}
