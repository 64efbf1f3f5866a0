#!/usr/bin/env bash
# `make serve`: the production run. Collect static files, migrate, then start gunicorn (web)
# and the django-q2 workers from the Procfile under honcho. Configured only by environment
# variables (or .env, where a variable already set in the environment wins), see README.
#
#   PORT / VAULTCMS_BIND      where gunicorn listens (default 127.0.0.1:8000)
#   VAULTCMS_WEB_WORKERS      gunicorn worker processes (default 2)
#   VAULTCMS_QCLUSTERS        qcluster processes (default 1)
#   VAULTCMS_WORKERS          worker processes inside each qcluster (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN="$(pwd)/.venv/bin"
PY="$VENV_BIN/python"
export PATH="$VENV_BIN:$PATH"

# Load .env without overriding the environment; honcho is then told not to read it itself
# (it would let .env win).
if [ -f .env ]; then
    eval "$("$PY" - <<'PYEOF'
import os, shlex
from dotenv import dotenv_values
for key, value in dotenv_values(".env").items():
    if value is not None and key not in os.environ and key.isidentifier():
        print(f"export {key}={shlex.quote(value)}")
PYEOF
)"
fi

debug="$(printf '%s' "${VAULTCMS_DEBUG:-}" | tr '[:upper:]' '[:lower:]')"
case "$debug" in
    1|true|yes|on) debug=on ;;
    "") debug=on ;;
    *) debug=off ;;
esac
if [ "$debug" = off ] && [ -z "${VAULTCMS_SECRET_KEY:-}" ]; then
    echo "serve: refusing to start: VAULTCMS_DEBUG is off and VAULTCMS_SECRET_KEY is not set" >&2
    exit 1
fi

export PORT="${PORT:-8000}"
qclusters="${VAULTCMS_QCLUSTERS:-1}"
case "$qclusters" in
    ''|*[!0-9]*) echo "serve: VAULTCMS_QCLUSTERS must be a whole number, got '$qclusters'" >&2; exit 1 ;;
esac

"$PY" manage.py collectstatic --noinput --verbosity 0
"$PY" manage.py migrate --noinput
echo "serve: web on ${VAULTCMS_BIND:-127.0.0.1:$PORT}, ${qclusters} qcluster process(es) of ${VAULTCMS_WORKERS:-2} worker(s)"
exec "$VENV_BIN/honcho" start --env /dev/null --no-colour -c "web=1,worker=${qclusters}"
