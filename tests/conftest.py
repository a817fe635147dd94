"""Shared fixtures: a fresh database per run, a clean one per test, real Redis and SMTP.

PostgreSQL by default (`TEST_DATABASE_URL` names the server; a new database is created
for the run and dropped after it). `TEST_DATABASE=sqlite` runs the same tests on a
SQLite file instead, as the zero-setup default does. The builders behind these fixtures
live in tests/apps.py, tests/people.py and tests/queries.py.
"""

import logging
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from gobarber.extensions import db
from gobarber.testing import SmtpServer
from tests.apps import ADMIN_URL, USE_SQLITE, libpq, migrate, running_app, shop_slot
from tests.people import Api
from tests.queries import QueryCounter

pytest_plugins = ["tests.pipeline", "tests.topologies"]


@pytest.fixture(scope="session", autouse=True)
def root_logging_kept():
    """Put the root logger's handlers back after the run: Alembic's env.py points them at
    the stderr of the moment, which pytest closes, and a line logged at exit (by a
    process's last metrics flush) would then fail to print."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_collection_modifyitems(config, items):
    if USE_SQLITE:
        skip = pytest.mark.skip(reason="needs PostgreSQL")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """Create a database for this run, migrate it with `flask db upgrade`, drop it after."""
    if USE_SQLITE:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gobarber.db'}"
        migrate(url)
        yield url
        return
    name = f"gobarber_test_{uuid.uuid4().hex[:10]}"
    admin = make_url(ADMIN_URL)
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def config_overrides():
    """Override in a module to change the app's settings for its tests."""
    return {}


@pytest.fixture
def app(request, database_url, tmp_path, config_overrides):
    # A test marked `sends_mail` (its module says `pytestmark = pytest.mark.sends_mail`)
    # gets an app that sends to the `smtp_server` fixture and retries within milliseconds
    # (tests/pipeline.py's `pipeline_config`). A marker, unlike a `config_overrides`
    # fixture re-exported by conftests, says so in the test module itself, and leaves
    # `config_overrides` free for a module's own settings, applied on top.
    overrides = dict(config_overrides)
    if request.node.get_closest_marker("sends_mail"):
        overrides = {**request.getfixturevalue("pipeline_config"), **overrides}
    with running_app(database_url, tmp_path, **overrides) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def slot(app):
    """Make slots relative to today: `slot(days=2, hour=9)`."""
    return lambda days=1, hour=10: shop_slot(app, days=days, hour=hour)


@pytest.fixture
def count_queries(app):
    """Count the SQL statements run inside a `with count_queries() as counter:` block."""

    @contextmanager
    def counting():
        counter = QueryCounter()
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", counter)

    return counting


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) in this process; tests read what it received."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
