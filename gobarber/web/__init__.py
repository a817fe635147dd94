"""What is not the clients' REST contract: probes for operators and the admin pages."""

from datetime import UTC, datetime

from gobarber.web import admin, home, pages, probes


def register(app):
    """Register the probe routes, request counting and the admin pages."""
    app.register_blueprint(probes.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(home.bp)
    pages.init_app(app)
    probes.count_requests(app)

    @app.template_filter("datetime_ms")
    def datetime_ms(value):
        if value is None:
            return "—"
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
