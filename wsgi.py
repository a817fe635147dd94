"""The WSGI entry point: `gunicorn wsgi:app`."""

import sys

from dotenv import load_dotenv

from gobarber import create_app, logs
from gobarber.config import ConfigError
from gobarber.readiness import ServiceUnreachable, check_services

APP_LOAD_ERROR = 4

load_dotenv()
try:
    app = create_app()
    check_services(app)
except (ConfigError, ServiceUnreachable) as error:
    print(f"gobarber: {error}", file=sys.stderr)
    # 4 is gunicorn's "app failed to load": the master stops instead of respawning the
    # worker forever, as it does for any other exit status.
    sys.exit(APP_LOAD_ERROR)
logs.configure(app, "web")
