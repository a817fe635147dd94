"""Throttles on Redis, shared by every web process (Flask-Limiter)."""


def init_app(app):
    """Configure and bind the limiter."""
