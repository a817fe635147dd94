"""`flask` commands for operators."""


def register(app):
    """Register the app's CLI commands."""
