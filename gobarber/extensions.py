"""Flask extensions, created unbound and bound to an app in `create_app`."""

from flask import current_app
from flask_babel import Babel
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from gobarber.mail.queue import MailQueue
from gobarber.redis_connection import connect

# Stable constraint names, so migrations can name what they alter on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Rows stay readable after a commit: every session lives for one request or one stream
# entry, so reloading them from the database would only cost queries.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
mail = Mail()
cors = CORS()
# The pages' forms (the shop's and the admin's); the JSON API has bearer tokens and is
# never checked.
csrf = CSRFProtect()
# The pages' language: pt-BR, or English for a browser that prefers it.
babel = Babel()


def mail_settings(app):
    """Return Flask-Mail's settings for `app` (server, port, credentials, sender)."""
    return app.extensions["mail"]


class AppBound:
    """An object built once per app by `init_app`, handed to every caller by `get()`."""

    def __init__(self, name, build):
        self.name = name
        self.build = build

    def init_app(self, app):
        app.extensions[self.name] = self.build(app)

    def get(self, app=None):
        """Return the current app's object (or `app`'s, outside an app context)."""
        return (app or current_app).extensions[self.name]


class AppHook(AppBound):
    """A function a later layer lends an earlier one, per app, without an import: the
    shop's pages give the app's error handlers their error page. None until set."""

    def __init__(self, name):
        super().__init__(name, build=None)

    def set(self, app, function):
        app.extensions[self.name] = function

    def get(self, app=None):
        return (app or current_app).extensions.get(self.name)


# The one way to Redis, and the one owner of the mail streams on it.
redis_store = AppBound("redis", lambda app: connect(app.config))
mail_queue = AppBound(
    "mail_queue", lambda app: MailQueue.from_config(redis_store.get(app), app.config)
)
# Requests publish through a client that gives up quickly and never retries: a cancel must
# not wait on a Redis that hangs (a master stopped answering, a cluster down); its mail
# stays in the outbox and the reaper relays it. Consumers keep the patient client above.
PUBLISH_TIMEOUT_S = 0.5
publishing_queue = AppBound(
    "publishing_queue",
    lambda app: MailQueue.from_config(
        connect(app.config, timeout=PUBLISH_TIMEOUT_S, retry=Retry(NoBackoff(), 0)), app.config
    ),
)
# The admin page's sessions: Flask-Session stores msgpack bytes, so replies stay bytes.
session_redis = AppBound("session_redis", lambda app: connect(app.config, decode_responses=False))


def _limiter(app):
    # One per app: Flask-Limiter keeps its storage and its limits on the object. It reads
    # the RATELIMIT_* settings gobarber.throttle derives from ours.
    bound = Limiter(get_remote_address)
    bound.init_app(app)
    return bound


# `render(status, message)`: a page for an error on the shop's pages' paths, else None.
page_error = AppHook("page_error")

# The throttles' rate limiter (gobarber/throttle.py says what it counts).
limiter = AppBound("throttle", _limiter)
