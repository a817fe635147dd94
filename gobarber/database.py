"""Engine settings per database."""

from sqlalchemy import event, text

from gobarber.extensions import db

SQLITE_BUSY_TIMEOUT_S = 30


def engine_options(uri):
    """Return engine options: SQLite waits for a busy writer, PostgreSQL checks pooled links."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def tune(app):
    """Put a SQLite database in WAL mode: web, worker and reaper share the file."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()


def commit_without_waiting_for_disk():
    """Commit, letting PostgreSQL answer before the commit reaches the disk (an
    asynchronous commit: a database crash may lose the last fraction of a second of
    them, a process crash loses nothing). Only for writes whose loss something else
    repairs; on SQLite a plain commit."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db.session.commit()
