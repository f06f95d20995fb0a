#!/usr/bin/env bash
# Bring this machine to the point where DAC runs: .venv with the pinned packages, PostgreSQL
# and Redis answering (started, or installed with apt, when they are local), the database
# created and migrated. Idempotent; a second run takes a couple of seconds.
#
#   scripts/bootstrap.sh                 everything, including `migrate`
#   scripts/bootstrap.sh --no-migrate    everything but `migrate`   (also: DAC_BOOTSTRAP_MIGRATE=0)
#   scripts/bootstrap.sh --venv-only     only .venv and its packages
#   scripts/bootstrap.sh --browser       also Debian's `chromium` (/usr/bin/chromium) for the browser
#                                        tests (also: DAC_BOOTSTRAP_BROWSER=1); `make test` passes it
#
# DATABASE_URL / REDIS_URL are respected; services are only started or installed when
# they point at this machine (localhost, 127.0.0.1, ::1, or a local socket).
# Meant to be executed; sourcing it from another bash script also works (it sets -euo pipefail).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VENV_PY="$VENV/bin/python"
REQ_STAMP="$VENV/.requirements.sha256"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/dac"   # same defaults as dacproject/settings.py
DEFAULT_REDIS_URL="redis://127.0.0.1:6379/0"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif have sudo; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

as_postgres() {  # run a command as the postgres OS user (local peer authentication)
    if [ "$(id -u)" -eq 0 ] && have runuser; then (cd / && runuser -u postgres -- "$@")
    elif [ "$(id -u)" -eq 0 ]; then (cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
    elif have sudo; then (cd / && sudo -u postgres "$@")
    else die "need root (or sudo) to act as the postgres user: $*"
    fi
}

APT_UPDATED=""
apt_install() {
    have apt-get || die "please install: $* (no apt-get on this machine)"
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# --- Python virtualenv ------------------------------------------------------------------------

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if have "$candidate" && python_ok "$candidate"; then command -v "$candidate"; return 0; fi
    done
    return 1
}

ensure_venv() {
    if [ -x "$VENV_PY" ] && python_ok "$VENV_PY"; then
        :
    else
        local py
        if ! py="$(find_python)"; then
            apt_install python3 python3-venv
            py="$(find_python)" || die "Python 3.11+ is required (set PYTHON=/path/to/python3.11)"
        fi
        say "creating .venv with $py ($("$py" -V 2>&1))"
        if ! "$py" -m venv --clear "$VENV" 2>/dev/null; then
            # Debian's python3 ships venv's ensurepip separately.
            [ "$py" = /usr/bin/python3 ] && apt_install python3-venv
            "$py" -m venv --clear "$VENV" || die "could not create $VENV"
        fi
    fi
    local want have_hash=""
    want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
    [ -f "$REQ_STAMP" ] && have_hash="$(cat "$REQ_STAMP")"
    if [ "$want" != "$have_hash" ]; then
        say "installing requirements.txt into .venv (pip)"
        "$VENV_PY" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements.txt"
        printf '%s\n' "$want" >"$REQ_STAMP"
    else
        say ".venv up to date"
    fi
}

# --- Chromium for the browser tests (tests/browser, Playwright) ----------------------------------
# Playwright drives the OS package's /usr/bin/chromium; `playwright install` (a download) is never used.

CHROMIUM=/usr/bin/chromium

chromium_ok() { [ -x "$CHROMIUM" ] && "$CHROMIUM" --version >/dev/null 2>&1; }

ensure_chromium() {
    if ! chromium_ok; then
        say "$CHROMIUM is missing (or does not run); the browser tests (tests/browser) need Debian's chromium"
        have apt-get || die "please install Chromium as $CHROMIUM (Debian/Ubuntu package: chromium); no apt-get here"
        if [ "$(id -u)" -ne 0 ] && ! have sudo; then
            die "installing chromium needs root: run \`apt-get install -y chromium\` as root, then make test again"
        fi
        # The package lists are usually fresh enough; update only when the first try fails.
        say "apt-get install chromium"
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
                >/dev/null 2>&1; then
            say "apt-get install chromium failed; refreshing the package lists and trying again"
            apt_install chromium
        fi
        chromium_ok || die "chromium was installed but \`$CHROMIUM --version\` fails"
    fi
    say "$("$CHROMIUM" --version 2>/dev/null | head -n1) at $CHROMIUM"
}

# --- Probing the services (one Python process: parses the URLs like settings.py does) --------

# Prints shell assignments: DB_* and REDIS_* (connection parts, *_LOCAL, *_STATE, *_ERROR).
# DB_STATE: ok | down | auth | norole | nodb | error.   REDIS_STATE: ok | down | error.
PROBE_PY='
import os, shlex, sys
from urllib.parse import unquote, urlsplit

what = sys.argv[1]
LOCAL = {"", "localhost", "127.0.0.1", "::1"}
out = {}

def classify(message):
    m = message.lower()
    if "database" in m and "does not exist" in m:
        return "nodb"
    if "role" in m and "does not exist" in m:
        return "norole"
    if any(s in m for s in ("password authentication failed", "no pg_hba.conf entry", "no password supplied",
                            "authentication failed", "peer authentication")):
        return "auth"
    if any(s in m for s in ("connection refused", "could not connect", "timeout expired", "no such file",
                            "starting up", "shutting down", "could not translate host", "name or service not known")):
        return "down"
    return "error"

if what in ("db", "all"):
    import environ
    cfg = environ.Env.db_url_config(os.environ.get("DATABASE_URL") or sys.argv[2])
    host = cfg.get("HOST") or ""
    out.update(DB_HOST=host, DB_PORT=str(cfg.get("PORT") or 5432), DB_NAME=cfg.get("NAME") or "",
               DB_USER=cfg.get("USER") or "", DB_PASSWORD=cfg.get("PASSWORD") or "",
               DB_LOCAL="1" if (host in LOCAL or host.startswith("/")) else "0",
               DB_STATE="ok", DB_ERROR="")
    try:
        import psycopg
        psycopg.connect(host=host or None, port=out["DB_PORT"], user=out["DB_USER"] or None,
                        password=out["DB_PASSWORD"] or None, dbname=out["DB_NAME"], connect_timeout=3).close()
    except Exception as exc:
        out["DB_STATE"], out["DB_ERROR"] = classify(str(exc)), " ".join(str(exc).split())

if what in ("redis", "all"):
    import redis
    url = os.environ.get("REDIS_URL") or sys.argv[3]
    parts = urlsplit(url)
    host = parts.hostname or ""
    out.update(REDIS_HOST=host, REDIS_PORT=str(parts.port or 6379),
               REDIS_LOCAL="1" if (parts.scheme == "redis" and host in LOCAL) else "0",
               REDIS_STATE="ok", REDIS_ERROR="")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=3).ping()
    except redis.AuthenticationError as exc:
        out["REDIS_STATE"], out["REDIS_ERROR"] = "error", " ".join(str(exc).split())
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        out["REDIS_STATE"], out["REDIS_ERROR"] = "down", " ".join(str(exc).split())
    except Exception as exc:
        out["REDIS_STATE"], out["REDIS_ERROR"] = "error", " ".join(str(exc).split())

for key, value in out.items():
    print(f"{key}={shlex.quote(value)}")
'

probe() {  # probe db|redis|all
    local vars
    vars="$("$VENV_PY" -c "$PROBE_PY" "$1" "$DEFAULT_DATABASE_URL" "$DEFAULT_REDIS_URL")" \
        || die "could not check DATABASE_URL / REDIS_URL (see the error above)"
    eval "$vars"
}

# --- PostgreSQL ---------------------------------------------------------------------------------

pg_where() { printf '%s:%s' "${DB_HOST:-local socket}" "$DB_PORT"; }

pg_up() {  # reachable (any answer, even "wrong password", counts)
    if have pg_isready; then
        pg_isready -q -t 2 ${DB_HOST:+-h "$DB_HOST"} -p "$DB_PORT"
    else
        probe db; [ "$DB_STATE" != down ]
    fi
}

pg_super_psql() {  # psql as the postgres superuser over the local socket
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$DB_PORT" -d postgres "$@"
}

start_local_postgres() {
    if ! have pg_ctlcluster; then
        apt_install postgresql
        pg_up && return 0   # the package's own init script may have started it
    fi
    local ver="" name="" line
    # pg_lsclusters -h: version cluster port status owner datadir logfile
    while read -r line; do
        set -- $line
        if [ -z "$ver" ] || [ "$3" = "$DB_PORT" ]; then ver="$1"; name="$2"; fi
        [ "$3" = "$DB_PORT" ] && break
    done < <(pg_lsclusters -h 2>/dev/null || true)
    if [ -z "$ver" ]; then
        ver="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
        [ -n "$ver" ] || die "PostgreSQL is installed but no server version found under /usr/lib/postgresql"
        name=main
        say "creating PostgreSQL cluster $ver/$name on port $DB_PORT"
        as_root pg_createcluster -p "$DB_PORT" "$ver" "$name" >/dev/null
    fi
    say "starting PostgreSQL $ver/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start || true
}

ensure_postgres() {
    if pg_up; then
        :
    elif [ "$DB_LOCAL" != 1 ]; then
        die "PostgreSQL at $(pg_where) (DATABASE_URL) is not reachable; it is not local, so start it yourself"
    else
        say "PostgreSQL is not answering at $(pg_where)"
        start_local_postgres
        local i
        for i in $(seq 1 60); do pg_up && break; sleep 0.5; done
        pg_up || die "PostgreSQL did not come up at $(pg_where); see /var/log/postgresql/"
    fi
    say "PostgreSQL answers at $(pg_where)"

    local attempt
    for attempt in 1 2 3 4; do
        probe db
        case "$DB_STATE" in
            ok) say "database '$DB_NAME' is there"; return 0 ;;
            nodb) create_database ;;
            norole) fix_missing_role ;;
            auth) fix_auth ;;
            down) sleep 1 ;;
            *) die "cannot use database '$DB_NAME' at $(pg_where): $DB_ERROR" ;;
        esac
    done
    die "cannot use database '$DB_NAME' at $(pg_where): $DB_ERROR"
}

CREATEDB_PY='
import os, sys, psycopg
from psycopg import sql
host, port, user, password, name = sys.argv[1:6]
last = None
for maintenance in ("postgres", "template1"):
    try:
        with psycopg.connect(host=host or None, port=port, user=user or None, password=password or None,
                             dbname=maintenance, connect_timeout=5, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        sys.exit(0)
    except psycopg.errors.DuplicateDatabase:
        sys.exit(0)
    except psycopg.Error as exc:
        last = exc
print(" ".join(str(last).split()), file=sys.stderr)
sys.exit(1)
'

create_database() {
    say "creating database '$DB_NAME'"
    if "$VENV_PY" -c "$CREATEDB_PY" "$DB_HOST" "$DB_PORT" "$DB_USER" "$DB_PASSWORD" "$DB_NAME"; then
        return 0
    fi
    [ "$DB_LOCAL" = 1 ] || die "could not create database '$DB_NAME' at $(pg_where); create it, or point DATABASE_URL elsewhere"
    say "retrying as the postgres superuser"
    printf 'CREATE DATABASE :"db" OWNER :"owner";\n' \
        | pg_super_psql -v db="$DB_NAME" -v owner="${DB_USER:-postgres}" \
        || die "could not create database '$DB_NAME'"
}

fix_missing_role() {
    [ "$DB_LOCAL" = 1 ] || die "$DB_ERROR (DATABASE_URL is not local: create the role yourself)"
    say "creating PostgreSQL role '$DB_USER' (LOGIN CREATEDB)"
    if [ -n "$DB_PASSWORD" ]; then
        printf 'CREATE ROLE :"role" LOGIN CREATEDB PASSWORD :%s;\n' "'pw'" \
            | pg_super_psql -v role="$DB_USER" -v pw="$DB_PASSWORD"
    else
        printf 'CREATE ROLE :"role" LOGIN CREATEDB;\n' | pg_super_psql -v role="$DB_USER"
    fi || die "could not create role '$DB_USER'"
}

fix_auth() {
    # A fresh Debian cluster asks for a password on TCP, while the default DATABASE_URL has none
    # (development setup: trust on the loopback interface). Only ever done for a local server
    # and a URL without a password, and at most once (marker line).
    if [ "$DB_LOCAL" != 1 ] || [ -n "$DB_PASSWORD" ]; then
        die "PostgreSQL refused the login: $DB_ERROR (check the credentials in DATABASE_URL)"
    fi
    local hba marker="# DAC scripts/bootstrap.sh: passwordless loopback logins for development"
    hba="$(pg_super_psql -tA -c 'SHOW hba_file')" || die "PostgreSQL refused the login: $DB_ERROR"
    if as_root grep -qF "$marker" "$hba"; then
        die "PostgreSQL refused the login: $DB_ERROR (see $hba)"
    fi
    say "PostgreSQL wants a password for '$DB_USER' over TCP; allowing trust logins from 127.0.0.1/::1 in $hba"
    { printf '%s\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n\n' "$marker"; as_root cat "$hba"; } \
        | as_root tee "$hba.dac-new" >/dev/null
    as_root sh -c 'cat "$1.dac-new" >"$1" && rm -f "$1.dac-new"' sh "$hba"
    pg_super_psql -tA -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.5
}

# --- Redis ----------------------------------------------------------------------------------------

ensure_redis() {
    probe redis
    if [ "$REDIS_STATE" = ok ]; then say "Redis answers at $REDIS_HOST:$REDIS_PORT"; return 0; fi
    [ "$REDIS_STATE" = down ] || die "Redis at $REDIS_HOST:$REDIS_PORT (REDIS_URL): $REDIS_ERROR"
    [ "$REDIS_LOCAL" = 1 ] || die "Redis at $REDIS_HOST:$REDIS_PORT (REDIS_URL) is not reachable; it is not local, so start it yourself"
    say "Redis is not answering at $REDIS_HOST:$REDIS_PORT"
    if ! have redis-server; then
        apt_install redis-server
        probe redis
        [ "$REDIS_STATE" = ok ] && { say "Redis answers at $REDIS_HOST:$REDIS_PORT"; return 0; }
    fi
    as_root mkdir -p /var/lib/redis /var/log/redis
    say "starting redis-server on port $REDIS_PORT"
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
    local i
    for i in $(seq 1 40); do
        probe redis
        [ "$REDIS_STATE" = ok ] && { say "Redis answers at $REDIS_HOST:$REDIS_PORT"; return 0; }
        sleep 0.25
    done
    die "Redis did not come up on port $REDIS_PORT: $REDIS_ERROR (see /var/log/redis/ci.log)"
}

# --- main -------------------------------------------------------------------------------------------

bootstrap_main() {
    local migrate="${DAC_BOOTSTRAP_MIGRATE:-1}" venv_only=0 browser="${DAC_BOOTSTRAP_BROWSER:-0}" arg
    for arg in "$@"; do
        case "$arg" in
            --no-migrate) migrate=0 ;;
            --venv-only) venv_only=1 ;;
            --browser) browser=1 ;;
            *) die "unknown option: $arg (use --no-migrate, --venv-only or --browser)" ;;
        esac
    done
    cd "$ROOT"
    ensure_venv
    [ "$browser" = 1 ] && ensure_chromium
    [ "$venv_only" = 1 ] && return 0
    probe all
    ensure_postgres
    ensure_redis
    if [ "$migrate" = 1 ]; then
        say "migrating"
        "$VENV_PY" manage.py migrate --noinput -v 0
        say "database schema up to date"
    fi
}

bootstrap_main "$@"
