"""The committed migrations build exactly the schema the models describe, on both databases.

`flask db upgrade` runs on an empty PostgreSQL database (a throwaway one, created and
dropped here, whatever TEST_DATABASE says) and on an empty SQLite file; Alembic's
autogenerate comparison between the result and the models must then find nothing.
Downgrading to base and upgrading again must work too, as a rollback of a release would.
"""

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from gobarber import MIGRATIONS, create_app
from gobarber.extensions import db
from tests.apps import ADMIN_URL, make_config

MODEL_TABLES = {
    "users",
    "files",
    "appointments",
    "notifications",
    "mail_deliveries",
    "password_resets",
}


def _libpq(url):
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def empty_postgresql_url():
    """A new, empty PostgreSQL database, dropped after the test."""
    admin = make_url(ADMIN_URL)
    try:
        connection = psycopg.connect(_libpq(admin), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL does not answer at {admin.host}:{admin.port}: {error}")
    name = f"gobarber_migrations_{uuid.uuid4().hex[:10]}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_libpq(admin), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def migrated_app(request, tmp_path):
    """An app on an empty database of each kind, for the test to migrate."""
    url = request.getfixturevalue(f"empty_{request.param}_url")
    app = create_app(make_config(url, tmp_path))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def schema_differences():
    """List what Alembic's autogenerate would change to make the database match the models."""
    # An empty metadata would compare equal to any database.
    assert set(db.metadata.tables) == MODEL_TABLES
    with db.engine.connect() as connection:
        # SQLite reflects a default as the text it was written with (`false` here, `0` from
        # the models), so defaults are compared on PostgreSQL only.
        options = {"compare_type": True, "compare_server_default": db.engine.name == "postgresql"}
        context = MigrationContext.configure(connection, opts=options)
        return compare_metadata(context, db.metadata)


def current_revision():
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def table_names():
    return set(inspect(db.engine).get_table_names())


def head_revision():
    return ScriptDirectory(MIGRATIONS).get_current_head()


def test_upgrade_from_empty_builds_the_models_schema(migrated_app):
    assert table_names() == set()
    upgrade()
    differences = schema_differences()
    print(*differences, sep="\n")
    assert differences == []
    assert table_names() == MODEL_TABLES | {"alembic_version"}
    assert current_revision() == head_revision()


def test_downgrade_to_base_then_upgrade_again(migrated_app):
    upgrade()
    downgrade(revision="base")
    assert table_names() == {"alembic_version"}
    assert current_revision() is None
    upgrade()
    differences = schema_differences()
    print(*differences, sep="\n")
    assert differences == []
    assert current_revision() == head_revision()
