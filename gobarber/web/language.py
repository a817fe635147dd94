"""The pages' language: pt-BR like the mails, English for a browser that prefers it.

Message ids are English; each area of the pages keeps its pt-BR catalogue in a domain of
its own (`gobarber/translations/pt_BR/LC_MESSAGES/<domain>.po`), so the areas can grow
apart, and Flask-Babel merges them. `make translations` compiles the `.mo` files, which
are committed; a test holds each one to its `.po`.
"""

from pathlib import Path

from flask import has_request_context, request
from flask_babel import get_locale

from gobarber.extensions import babel

DEFAULT = "pt_BR"
# Locale -> the language tag a browser sends for it.
OFFERED = {"pt_BR": "pt-BR", "en": "en"}
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DOMAINS = ("messages", "customer", "provider")


def select_locale():
    """The offered language the browser ranks first (Accept-Language; any `pt-*` is
    pt-BR, any `en-*` English), else pt-BR. Mails render without a request: pt-BR."""
    if not has_request_context():
        return DEFAULT
    for tag, _quality in request.accept_languages:  # best first
        primary = tag.lower().replace("_", "-").split("-")[0]
        for locale, offered in OFFERED.items():
            if primary == offered.lower().split("-")[0]:
                return locale
    return DEFAULT


def init_app(app):
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join([str(TRANSLATIONS)] * len(DOMAINS))
    app.config["BABEL_DOMAIN"] = ";".join(DOMAINS)
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals["html_lang"] = html_lang


def html_lang():
    """The page's `lang`: the language tag of this request's locale."""
    return OFFERED.get(str(get_locale()), OFFERED[DEFAULT])
