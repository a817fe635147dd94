"""GoBarber: a booking backend for barbershops."""

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gobarber import config as settings
from gobarber import extensions
from gobarber.database import engine_options
from gobarber.errors import register_error_handlers

MIGRATIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "migrations"))


def create_app(config=None):
    """Build the app from the environment, with `config` overriding it (tests do)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(settings.from_environment())
    app.config.update(config or {})
    settings.validate(app.config, app.instance_path)
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    )
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's own default is None: no cap
        # The JSON limit for every body; `POST /files` raises it to the upload limit
        # for its own request (api/contract.py's `allow_upload`).
        app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_JSON_KB"] * 1024
    if not app.config.get("UPLOAD_FOLDER"):
        app.config["UPLOAD_FOLDER"] = os.path.join(app.instance_path, "uploads")
    os.makedirs(app.instance_path, exist_ok=True)
    app.json.sort_keys = False
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    trust_proxies(app)
    return app


def register_extensions(app):
    from gobarber import database
    from gobarber.web import language, security

    # Through the module: the `gobarber.mail` package would shadow a bare `mail` here.
    extensions.db.init_app(app)
    database.tune(app)
    extensions.migrate.init_app(app, extensions.db, directory=MIGRATIONS)
    extensions.mail.init_app(app)
    extensions.cors.init_app(app, resources=security.API_CORS_RESOURCES)
    extensions.redis_store.init_app(app)
    extensions.mail_queue.init_app(app)
    extensions.publishing_queue.init_app(app)
    security.init_app(app)
    language.init_app(app)


def register_blueprints(app):
    from gobarber import api, throttle, web

    api.register(app)
    web.register(app)
    # Once every view is registered: the throttles wrap them by endpoint name.
    throttle.init_app(app)


def trust_proxies(app):
    """Read the client's address and scheme from the hops `TRUSTED_PROXIES` proxies
    appended to X-Forwarded-For/-Proto; with none, anyone could write those headers, so
    they are ignored (a forged address must not buy a fresh throttle count)."""
    hops = app.config["TRUSTED_PROXIES"]
    # Once: a second ProxyFix would read one more hop per proxy, one a client wrote.
    if hops and not isinstance(app.wsgi_app, ProxyFix):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def register_commands(app):
    from gobarber.commands import register

    register(app)
