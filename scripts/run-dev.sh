#!/usr/bin/env bash
# Run the whole system for development: web, worker, reaper and the local SMTP sink.
# Starts a Redis for this session when none answers and redis-server is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
# The Procfile names gunicorn and python: take them from the project's environment.
export PATH="$PWD/$venv/bin:$PATH"

redis_answers() {
  "$venv/bin/python" - <<'PY'
import os, sys
from dotenv import load_dotenv
import redis
load_dotenv(".env")
url = os.environ.get("REDIS_URL") or "redis://localhost:6379/0"
try:
    redis.Redis.from_url(url, socket_connect_timeout=1).ping()
except redis.RedisError:
    sys.exit(1)
PY
}

started_redis=""
if ! redis_answers; then
  if command -v redis-server >/dev/null; then
    mkdir -p instance
    redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
      --pidfile "$PWD/instance/redis.pid" --logfile "$PWD/instance/redis.log"
    started_redis=1
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
    echo "run: started redis-server on 127.0.0.1:6379 for this session"
  else
    echo "run: no Redis answers on REDIS_URL; install one (Debian/Ubuntu: apt-get install redis-server, macOS: brew install redis) or point REDIS_URL at one" >&2
    exit 1
  fi
fi
stop_redis() {
  if [ -n "$started_redis" ] && [ -f instance/redis.pid ]; then
    kill "$(cat instance/redis.pid)" 2>/dev/null || true
  fi
}
trap stop_redis EXIT

"$venv/bin/flask" db upgrade
echo "run: GoBarber on http://localhost:${PORT:-3333}; mails land in ${MAILBOX_DIR:-mailbox}/"
"$venv/bin/honcho" start -f Procfile.dev
