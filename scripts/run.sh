#!/usr/bin/env bash
# `make run`: set the machine up (scripts/bootstrap.sh), then run the whole DAC in the foreground
# with honcho (Procfile: web, worker, beat, flower). The examples/*.yaml blueprints are applied,
# a demo run is started once the worker answers, and the URLs are printed. Ctrl-C stops everything.
#
# Environment: DATABASE_URL, REDIS_URL (see bootstrap.sh), PORT (web, default 8000),
# CELERY_CONCURRENCY (default 2), DAC_ADMIN_PASSWORD (password of the `admin` user when it is
# created; generated and printed once otherwise), DAC_DEMO_WORKFLOW (default approval-gate;
# empty to skip the demo run), DAC_WORKER_WAIT (seconds to wait for the worker, default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'run: %s\n' "$*"; }
die() { printf 'run: ERROR: %s\n' "$*" >&2; exit 1; }

bash "$ROOT/scripts/bootstrap.sh"

export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export PYTHONUNBUFFERED=1
export PORT="${PORT:-8000}"
FLOWER_PORT=5555

# Webhook triggers verify `X-DAC-Signature` with DAC_SECRET_WEBHOOK: one is generated per checkout
# (kept in .run/webhook_secret, never in the repository) unless it is given.
if [ -z "${DAC_SECRET_WEBHOOK:-}" ]; then
    mkdir -p .run
    [ -s .run/webhook_secret ] || python -c 'import secrets; print(secrets.token_hex(24))' > .run/webhook_secret
    chmod 600 .run/webhook_secret
    DAC_SECRET_WEBHOOK="$(cat .run/webhook_secret)"
    export DAC_SECRET_WEBHOOK
fi

say "collecting static files"
python manage.py collectstatic --noinput -v 0

# The `admin` superuser, created once. The password comes from DAC_ADMIN_PASSWORD or is generated
# and printed here, once; it is not stored anywhere else.
python manage.py shell -v 0 -c '
import os, secrets
from django.contrib.auth import get_user_model

User = get_user_model()
if not User.objects.filter(username="admin").exists():
    given = os.environ.get("DAC_ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    if given:
        print("run: created superuser admin (password from DAC_ADMIN_PASSWORD)")
    else:
        print("run: created superuser admin with password: " + password)
        print("run:   (shown only this once; change it with: .venv/bin/python manage.py changepassword admin)")
# The default approver groups exist from the start, so a newcomer only has to add people to them.
from django.conf import settings
from django.contrib.auth.models import Group
for name in settings.DAC_DEFAULT_APPROVERS:
    Group.objects.get_or_create(name=name)
'

shopt -s nullglob
blueprints=(examples/*.yaml)
shopt -u nullglob
if [ "${#blueprints[@]}" -eq 0 ]; then
    say "no examples/*.yaml to apply"
fi
failed=()
for file in "${blueprints[@]}"; do
    say "applying $file"
    python manage.py dac apply "$file" || failed+=("$file")
done
if [ "${#failed[@]}" -gt 0 ]; then
    die "could not apply: ${failed[*]} (check with: .venv/bin/python manage.py dac validate FILE)"
fi

print_urls() {
    local base="http://127.0.0.1:$PORT"
    cat <<EOF

  ==================================================================
   DAC is running (Ctrl-C stops everything)
     dashboard  $base/               (the home page; log in as: admin)
     inbox      $base/admin/governance/escalation/   (approve the demo's gate here)
     admin      $base/admin/
     API        $base/api/v1/
     API docs   $base/api/docs/
     health     $base/healthz
     Flower     http://127.0.0.1:$FLOWER_PORT/
     webhooks   $base/hooks/<path>   (signing key: DAC_SECRET_WEBHOOK, or .run/webhook_secret)
  ==================================================================

EOF
    if [ -n "${DEMO_ID:-}" ]; then
        cat <<EOF
   The demo run: watch its graph at
     $base/dashboard/instances/$DEMO_ID/
   and, when a step waits for approval, decide it in the inbox (the admin's "Approval inbox").

EOF
    fi
}

# Runs next to honcho: waits for the worker, starts the demo run, prints the URLs.
# It ends by itself when honcho ($1) is gone or the deadline passes.
demo_when_ready() {
    local honcho_pid="$1" deadline=$((SECONDS + ${DAC_WORKER_WAIT:-120}))
    local workflow="${DAC_DEMO_WORKFLOW-approval-gate}"
    sleep 2
    until celery -A dacproject inspect ping --timeout 2 >/dev/null 2>&1; do
        kill -0 "$honcho_pid" 2>/dev/null || exit 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "the worker did not answer within ${DAC_WORKER_WAIT:-120}s; no demo run started"
            print_urls
            exit 0
        fi
        sleep 1
    done
    kill -0 "$honcho_pid" 2>/dev/null || exit 0
    say "worker is up"
    local registered=0
    if [ -n "$workflow" ]; then
        # 0: registered, 3: not registered, anything else: the check itself failed (try the run anyway)
        DAC_DEMO_CHECK="$workflow" python manage.py shell -v 0 -c '
import os, sys
from registry.selectors import definition_get
sys.exit(0 if definition_get(os.environ["DAC_DEMO_CHECK"]) else 3)
' || registered=$?
    fi
    if [ -z "$workflow" ]; then
        say "DAC_DEMO_WORKFLOW is empty: no demo run"
    elif [ "$registered" -eq 3 ]; then
        say "workflow '$workflow' is not registered: no demo run (set DAC_DEMO_WORKFLOW to one that is)"
    else
        say "starting a demo run of '$workflow'"
        local started
        if started="$(python manage.py dac run "$workflow")"; then
            printf '%s\n' "$started"
            local id
            id="$(printf '%s' "$started" | sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p' | head -n1)"
            say "follow it with: .venv/bin/python manage.py dac status ${id:-<id>}"
            DEMO_ID="$id"
        else
            say "the demo run of '$workflow' could not be started (see above)"
        fi
    fi
    print_urls
}

# Started as a grandchild (the subshell exits at once), so nothing is left unreaped once honcho
# has replaced this shell.
( demo_when_ready "$$" & )

say "starting web, worker, beat and flower (honcho, Procfile)"
# honcho replaces this shell (same pid), so Ctrl-C and `kill` reach it directly; it stops
# every Procfile process (each in its own process group) before it exits.
exec honcho start -f "$ROOT/Procfile" -d "$ROOT" -p "$PORT"
