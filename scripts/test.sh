#!/usr/bin/env bash
# The one command that installs everything and runs the whole suite, on a fresh machine too:
#
#   scripts/test.sh                      # everything
#   scripts/test.sh tests/unit -x -q     # extra arguments go to pytest
#
# 1. .venv (made with `python3 -m venv` if missing) with `pip install -e '.[test]'`
# 2. scripts/services.sh: MariaDB and Redis on 127.0.0.1, started or installed if needed
# 3. ruff check, mypy (strict, on src/gochat, as configured in pyproject.toml), pytest
# It stops at the first step that fails, with that step's exit code.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }

fail() {
    local rc=$1
    shift
    printf '\ntest.sh: FAILED: %s (exit %s)\n' "$*" "$rc" >&2
    exit "$rc"
}

# Run one step; stop the whole script at the first failure, saying which step it was.
run() {
    local rc=0
    "$@" || rc=$?
    ((rc == 0)) || fail "$rc" "$*"
}

ensure_venv() {
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null || fail 1 "python3 not found; install Python 3.11 or newer"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        fail 1 "python3 is $(python3 -V 2>&1); GoChat needs Python 3.11 or newer"
    step "creating $VENV"
    run python3 -m venv --clear "$VENV"
}

step "installing gochat with its test extras into .venv"
ensure_venv
run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'

step "preparing services"
run bash "$ROOT/scripts/services.sh" mariadb redis browser seaweedfs sqlmap haproxy go

export GOCHAT_TEST_MYSQL_URL=mysql+asyncmy://root@127.0.0.1:3306/test
export GOCHAT_TEST_REDIS_URL=redis://127.0.0.1:6379/0
# Tests that need a service FAIL, instead of skipping, when it is missing.
export GOCHAT_REQUIRE_SERVICES=1
# End-to-end tests start `gochat serve` processes: the venv's tools come first on PATH.
export VIRTUAL_ENV=$VENV
export PATH=$VENV/bin:$PATH

step "ruff check src tests"
run ruff check src tests

step "mypy"
run mypy

step "pytest $*"
rc=0
python -m pytest "$@" || rc=$?
if ((rc == 5)); then
    fail 5 "pytest collected no tests; a run that tests nothing counts as a failure"
fi
((rc == 0)) || fail "$rc" "pytest"
