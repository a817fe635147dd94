"""Response headers, the proxy fix, and the admin page's sessions and CSRF."""


def init_app(app):
    """Install the headers, ProxyFix, server-side sessions and CSRF protection."""
