#!/usr/bin/env bash
# `make demo`: migrate, import a copy of the sample vault, create an admin, then serve the
# app with a worker (and the built-in API emulator when no ANTHROPIC_API_KEY is set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST="${VAULTCMS_DEMO_HOST:-127.0.0.1}"
PORT="${VAULTCMS_DEMO_PORT:-8000}"
EMULATOR_PORT="${VAULTCMS_EMULATOR_PORT:-8765}"
ADMIN_USER="${VAULTCMS_DEMO_USER:-admin}"
ADMIN_PASSWORD="${VAULTCMS_DEMO_PASSWORD:-vaultcms-demo}"
DEMO_VAULT="var/demo-vault"
mkdir -p var

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # qcluster's main process can linger after TERM: give everything 10 s, then stop it hard.
    for _ in $(seq 1 20); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# settings.py reads .env too, so ask Django whether a key is configured.
# -v 0 and tail: Django 5.2's shell also prints how many objects it auto-imported.
has_key=$($PY manage.py shell -v 0 -c \
    "import os; print('yes' if os.environ.get('ANTHROPIC_API_KEY') else 'no')" | tail -n 1)
if [ "$has_key" = "no" ]; then
    export ANTHROPIC_BASE_URL="http://127.0.0.1:${EMULATOR_PORT}"
    echo "No ANTHROPIC_API_KEY: starting the built-in API emulator on ${ANTHROPIC_BASE_URL}"
    $PY manage.py anthropic_emulator --port "$EMULATOR_PORT" --latency 0.3 --batch-seconds 8 \
        > var/emulator.log 2>&1 &
    pids+=($!)
fi

$PY manage.py migrate --noinput
# Work on a copy, so exporting in the demo never changes the files in this repository.
if [ ! -d "$DEMO_VAULT" ]; then cp -r sample_vault "$DEMO_VAULT"; fi
$PY manage.py import_vault "$DEMO_VAULT" --name "Sample vault"
$PY manage.py setup_demo_user --username "$ADMIN_USER" --password "$ADMIN_PASSWORD"

$PY manage.py qcluster > var/worker.log 2>&1 &
pids+=($!)

DASHBOARD="http://${HOST}:${PORT}/login/?next=/"
cat <<MSG

  VaultCMS is running: http://${HOST}:${PORT}/
  Log in as  ${ADMIN_USER} / ${ADMIN_PASSWORD}  — you land on the dashboard, which shows
  what to do next: import, curate, review, export.
  Worker log: var/worker.log   Stop with Ctrl-C.

MSG
# Open the dashboard in a browser once the server answers (only where there is a display;
# VAULTCMS_DEMO_OPEN=0 turns it off).
if [ "${VAULTCMS_DEMO_OPEN:-1}" = "1" ] && { [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = "Darwin" ]; }; then
    (
        for _ in $(seq 1 60); do
            if $PY -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
                "http://${HOST}:${PORT}/healthz" >/dev/null 2>&1; then
                $PY -m webbrowser -t "$DASHBOARD" >/dev/null 2>&1 || true
                break
            fi
            sleep 0.5
        done
    ) &
    pids+=($!)
fi
$PY manage.py runserver "${HOST}:${PORT}" --noreload
