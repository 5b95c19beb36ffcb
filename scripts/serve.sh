#!/usr/bin/env bash
# The one command that installs and runs GoChat in its embedded default shape (SQLite,
# in-process broker, media files in the data dir), on a fresh machine too:
#
#   scripts/serve.sh                                   # gochat serve with its defaults
#   scripts/serve.sh --host 0.0.0.0 --port 8080 --data-dir /srv/gochat
#
# Arguments go to `gochat serve`. The current directory is kept, so a relative --data-dir
# (or the default one) is relative to where this is run from.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv

die() {
    printf 'serve.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

if ! { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; }; then
    command -v python3 >/dev/null || die "python3 not found; install Python 3.11 or newer"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "python3 is $(python3 -V 2>&1); GoChat needs Python 3.11 or newer"
    echo "serve.sh: creating $VENV" >&2
    python3 -m venv --clear "$VENV" || die "python3 -m venv failed"
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT" ||
    die "pip install -e $ROOT failed"

exec "$VENV/bin/gochat" serve "$@"
