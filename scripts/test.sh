#!/usr/bin/env bash
# `make test`: set the machine up (scripts/bootstrap.sh), then ruff and the test suite.
# Arguments go to pytest:  scripts/test.sh -k diamond -x   /   make test ARGS="-k diamond -x"
# The suite starts its own Celery workers and uses its own database (test_dac, or
# TEST_DATABASE_NAME) and Redis database 15 (unless REDIS_URL is set).
# DAC_TEST_LINT=0 skips ruff. Exit status: non-zero when ruff or pytest fails, including
# pytest's 5 ("no tests collected").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The suite creates its own test database, so the development database needs no migrate.
# --browser: Debian's chromium for tests/browser (Playwright), installed with apt-get when missing.
bash "$ROOT/scripts/bootstrap.sh" --no-migrate --browser

lint_status=0
if [ "${DAC_TEST_LINT:-1}" != 0 ]; then
    echo "test: ruff check ."
    .venv/bin/ruff check . || lint_status=$?
fi

echo "test: pytest $*"
status=0
.venv/bin/python -m pytest "$@" || status=$?

if [ "$status" -eq 5 ]; then
    echo "test: FAILED: pytest collected no tests (exit 5)" >&2
elif [ "$status" -ne 0 ]; then
    echo "test: FAILED: pytest exited with $status" >&2
fi
if [ "$lint_status" -ne 0 ]; then
    echo "test: FAILED: ruff found problems (see above; many fix with: .venv/bin/ruff check --fix .)" >&2
    [ "$status" -eq 0 ] && status="$lint_status"
fi
exit "$status"
