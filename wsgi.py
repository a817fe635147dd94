"""The WSGI entry point: `gunicorn wsgi:app`.

The web waits for its database (up to STARTUP_WAIT seconds, 0 = forever), saying so in
one line, and starts without Redis: bookings need none, and a cancel keeps its mail in
the outbox until Redis answers.
"""

import logging
import sys

from dotenv import load_dotenv

from gobarber import create_app, logs
from gobarber.config import ConfigError
from gobarber.readiness import ServiceUnreachable, check_redis, wait_for_services

APP_LOAD_ERROR = 4

load_dotenv()
try:
    app = create_app()
    logs.configure(app, "web")
    wait_for_services(app, timeout=app.config["STARTUP_WAIT"], need_redis=False)
except (ConfigError, ServiceUnreachable) as error:
    print(f"gobarber: {error}", file=sys.stderr)
    # 4 is gunicorn's "app failed to load": the master stops instead of respawning the
    # worker forever, as it does for any other exit status.
    sys.exit(APP_LOAD_ERROR)
try:
    check_redis(app)
except ServiceUnreachable as error:
    logging.getLogger("gobarber").warning(
        "%s; serving anyway: cancels keep their mail in the outbox until it answers", error
    )
