"""Flask extensions, created unbound and bound to an app in `create_app`."""

from flask import current_app
from flask_cors import CORS
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
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


# The one way to Redis, and the one owner of the mail streams on it.
redis_store = AppBound("redis", lambda app: connect(app.config))
mail_queue = AppBound(
    "mail_queue", lambda app: MailQueue.from_config(redis_store.get(app), app.config)
)
