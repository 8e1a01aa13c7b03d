#!/usr/bin/env bash
# Install (never start) what the tests' real services need, on a fresh Debian 12 machine:
#   - PostgreSQL 15 + PostGIS 3 and nginx from Debian,
#   - a separate venv with stac-fastapi-pgstac + pypgstac + uvicorn at .ci/work/stac-venv
#     (its pins clash with the project's, so it never shares the project venv).
# Idempotent: each step is skipped when its result is already there. The tests start their own
# servers on 127.0.0.1 (tests/services/stac_api.py); this script starts nothing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stac_venv="${S2SCALE_STAC_VENV:-$repo_root/.ci/work/stac-venv}"
python="${PYTHON:-python3}"
# The [server] extra pins uvicorn[standard] (0.38.0 for 7.2.0); pypgstac runs `migrate` and `load`.
stac_requirements=(
    "stac-fastapi-pgstac[server]==7.2.0"
    "pypgstac[psycopg]==0.10.0"
)

say() { printf '[setup-services] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root for: $*" >&2
        exit 1
    fi
}

# ---------------------------------------------------------------- Debian packages
apt_install() {
    say "installing Debian packages: $*"
    # Keep the packages' maintainer scripts from starting nginx on :80 or a PostgreSQL cluster:
    # invoke-rc.d asks /usr/sbin/policy-rc.d, and exit code 101 means "do not start".
    local added_policy=0 status=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        added_policy=1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || status=$?
        apt_updated=1
    fi
    if [ "$status" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@" || status=$?
    fi
    if [ "$added_policy" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    return "$status"
}
apt_updated=0

pg_bindir="/usr/lib/postgresql/15/bin"
missing=()
[ -x "$pg_bindir/postgres" ] && [ -x "$pg_bindir/initdb" ] || missing+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing+=(postgresql-15-postgis-3)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "Debian packages present: postgresql-15, postgresql-15-postgis-3, nginx"
fi

# ---------------------------------------------------------------- STAC API server venv
check_imports='import stac_fastapi.pgstac.app, pypgstac.load, pypgstac.migrate, psycopg, uvicorn'
stamp="$stac_venv/.s2scale-requirements"
wanted="${stac_requirements[*]}"
if [ -x "$stac_venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
    && "$stac_venv/bin/python" -c "$check_imports" >/dev/null 2>&1; then
    say "STAC server venv present: $stac_venv"
else
    say "creating STAC server venv: $stac_venv ($wanted)"
    rm -rf "$stac_venv"
    mkdir -p "$(dirname "$stac_venv")"
    if ! "$python" -m venv "$stac_venv" >/dev/null 2>&1; then
        # Debian's own python3 needs python3-venv for ensurepip.
        rm -rf "$stac_venv"
        apt_install python3-venv
        "$python" -m venv "$stac_venv"
    fi
    "$stac_venv/bin/python" -m pip install -q "${stac_requirements[@]}"
    if ! out="$("$stac_venv/bin/python" -c "$check_imports" 2>&1)"; then
        printf '%s\n' "$out" >&2
        say "the STAC server venv does not import; see above" >&2
        exit 1
    fi
    printf '%s' "$wanted" > "$stamp"
fi

say "done; for the tests: export S2SCALE_STAC_PYTHON=$stac_venv/bin/python"
