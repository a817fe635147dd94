"""The WSGI entry point: `gunicorn wsgi:app`."""

import sys

from dotenv import load_dotenv

from gobarber import create_app
from gobarber.config import ConfigError
from gobarber.database import ServiceUnreachable, check_reachable

load_dotenv()
try:
    app = create_app()
    check_reachable(app)
except (ConfigError, ServiceUnreachable) as error:
    sys.exit(f"gobarber: {error}")
