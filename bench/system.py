"""The system under benchmark: its own database, Redis, SMTP sink and processes.

Every benchmark gets a PostgreSQL database of its own (created, migrated with
`flask db upgrade`'s function, dropped after), a private redis-server on a free port (so
peers, memory figures and key counts see nothing else), an SMTP sink in a separate
process, and the same environment for the app built in the benchmark process and for the
gunicorn, worker and reaper processes it starts.

`System(..., cluster_masters=3)` puts a private Redis Cluster of that many masters in
place of the redis-server (`REDIS_CLUSTER=true`, `REDIS_URL` naming its first node); with
`MAIL_STREAM_SHARDS=N` in the settings, seeded events go to their shard's streams.
"""

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
import redis
from flask_migrate import upgrade
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from gobarber import create_app
from gobarber.extensions import db, mail_queue, redis_store
from gobarber.mail.outbox import entry_fields
from gobarber.mail.queue import Priority, shard_for
from gobarber.models import Appointment, MailDelivery, User
from gobarber.models.mail_delivery import DeliveryStatus, MailKind
from gobarber.services.passwords import hash_password
from gobarber.services.users import issue_token
from gobarber.testing import PrivateCluster, PrivateRedis, Processes, free_port, wait_until

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key-long-enough-for-hs256-signing"
PASSWORD = "secret123"

__all__ = ["System", "system", "wait_until", "free_port", "Processes"]


class SmtpSink:
    """bench/smtp_sink.py in its own process: accepts every mail after `delay` seconds."""

    def __init__(self, delay=0.0):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "smtp_sink.py"), str(self.port), str(delay)],
            stdout=subprocess.DEVNULL,
        )
        import smtplib

        def answers():
            try:
                smtplib.SMTP("127.0.0.1", self.port, timeout=1).quit()
                return True
            except OSError:
                return False

        wait_until(answers, timeout=15, what="the SMTP sink")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def _libpq(url):
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class System:
    """A database, a private Redis (or Redis Cluster) and an SMTP sink; `env` configures
    every process."""

    def __init__(self, workdir, *, smtp_delay=0.0, cluster_masters=0, **settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_name = f"gobarber_bench_{uuid.uuid4().hex[:10]}"
        admin = make_url(ADMIN_URL)
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.database_url = admin.set(database=self.db_name).render_as_string(hide_password=False)
        self.redis = self.smtp = None
        self.cluster_masters = cluster_masters
        try:
            self._start(smtp_delay, settings)
        except BaseException:
            self.close()
            raise

    def _start(self, smtp_delay, settings):
        if self.cluster_masters:
            self.redis = PrivateCluster(self.workdir / "redis-cluster", self.cluster_masters)
        else:
            self.redis = PrivateRedis(self.workdir)
        self.redis.start()
        self.smtp = SmtpSink(smtp_delay)
        self.env = {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            **({"REDIS_CLUSTER": "true"} if self.cluster_masters else {}),
            "MAIL_STREAM_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "UPLOAD_FOLDER": str(self.workdir / "uploads"),
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.smtp.port),
            "MAIL_TIMEOUT": "5",
            "MAIL_VISIBILITY_TIMEOUT": "10",
            "MAIL_RETRY_BASE": "0.5",
            "MAIL_RETRY_MAX": "5",
            "MAIL_BLOCK_MS": "200",
            "LOG_LEVEL": "WARNING",
            # Load tests: the throttles would refuse them (bench/bruteforce.py measures those).
            "RATE_LIMITS": "off",
            "MAX_ACTIVE_BOOKINGS": "100000",
            "CANCELLATION_MAILS_PER_DAY": "100000",
            **{key: str(value) for key, value in settings.items()},
        }
        self.app = self.make_app()
        with self.app.app_context():
            upgrade()
        self.processes = Processes(self.env, self.workdir / "logs")

    def make_app(self, **overrides):
        """Build the app exactly as a process with `env` would, in this process."""
        with mock.patch.dict(os.environ, {**self.env, **overrides}):
            return create_app()

    @property
    def redis_client(self):
        return redis_store.get(self.app)

    @property
    def queue(self):
        return mail_queue.get(self.app)

    @property
    def redis_nodes(self):
        """The addresses ("host:port") of the Redis servers: one, or the cluster's nodes."""
        if self.cluster_masters:
            return list(self.redis.nodes)
        return [f"127.0.0.1:{self.redis.port}"]

    def node_client(self, address):
        """A plain client of the one Redis server at `address` (the caller closes it)."""
        host, port = address.rsplit(":", 1)
        return redis.Redis(host=host, port=int(port), decode_responses=True)

    def close(self):
        if getattr(self, "processes", None) is not None:
            self.processes.stop_all()
        if getattr(self, "app", None) is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
            self.redis_client.close()
        if self.smtp is not None:
            self.smtp.stop()
        if self.redis is not None:
            self.redis.stop()
        admin = make_url(ADMIN_URL)
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def web(self, workers=2):
        """Start gunicorn on bench_app (the real app plus the benchmark's routes); return
        its base URL once it answers."""
        return self.processes.web(
            workers,
            target=("--pythonpath", str(BENCH), "bench_app:app"),
            probe="/bench/ping",
        )

    # ---- data ------------------------------------------------------------------------

    def people(self, providers):
        """Insert a customer and `providers` providers; return (customer id, token, ids)."""
        with self.app.app_context():  # the hash cost is the app's setting
            password_hash = hash_password(PASSWORD)
        rows = [
            {
                "name": "Cliente Bench",
                "email": "cliente@bench.example.com",
                "password_hash": password_hash,
                "provider": False,
            }
        ] + [
            {
                "name": f"Barbeiro {number}",
                "email": f"barber{number}@bench.example.com",
                "password_hash": password_hash,
                "provider": True,
            }
            for number in range(providers)
        ]
        with self.app.app_context():
            ids = list(db.session.scalars(insert(User).returning(User.id), rows))
            db.session.commit()
            customer = db.session.get(User, ids[0])
            token = issue_token(user=customer)
        return ids[0], token, ids[1:]

    def appointments(self, count, *, customer_id, provider_ids, canceled, first_day=2):
        """Insert `count` appointments on free hourly slots; return their ids."""
        zone = self.app.config["SHOP_TIMEZONE"]
        from zoneinfo import ZoneInfo

        today = datetime.now(ZoneInfo(zone)).date()
        rows, now = [], datetime.now(UTC)
        for number in range(count):
            provider = provider_ids[number % len(provider_ids)]
            slot = number // len(provider_ids)
            day, hour = today + timedelta(days=first_day + slot // 12), 8 + slot % 12
            local = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
            rows.append(
                {
                    "user_id": customer_id,
                    "provider_id": provider,
                    "date": local.astimezone(UTC),
                    "canceled_at": now if canceled else None,
                }
            )
        with self.app.app_context():
            ids = []
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                ids += db.session.scalars(insert(Appointment).returning(Appointment.id), chunk)
            db.session.commit()
        return ids

    def cancellations(self, count, *, providers=20):
        """Seed `count` canceled appointments with their outbox rows and stream entries,
        exactly as `DELETE /appointments/:id` leaves them; return the event ids."""
        customer_id, _, provider_ids = self.people(providers)
        appointment_ids = self.appointments(
            count, customer_id=customer_id, provider_ids=provider_ids, canceled=True
        )
        with self.app.app_context():
            names = dict(
                db.session.execute(
                    select(User.id, User.email).where(User.id.in_(provider_ids))
                ).all()
            )
            placed = dict(
                db.session.execute(
                    select(Appointment.id, Appointment.provider_id).where(
                        Appointment.id.in_(appointment_ids)
                    )
                ).all()
            )
        now = datetime.now(UTC)
        shards = self.app.config["MAIL_STREAM_SHARDS"]
        event_ids = [str(uuid.uuid4()) for _ in appointment_ids]
        deliveries = [
            MailDelivery(
                event_id=event_id,
                shard=shard_for(event_id, shards),
                kind=MailKind.CANCELLATION,
                priority=Priority.DEFAULT,
                appointment_id=appointment_id,
                recipient=f"Barbeiro <{names[placed[appointment_id]]}>",
                status=DeliveryStatus.QUEUED,
                attempts=0,
                created_at=now,
            )
            for appointment_id, event_id in zip(appointment_ids, event_ids, strict=True)
        ]
        entry_ids = self.publish(deliveries)
        rows = [
            {
                "event_id": d.event_id,
                "shard": d.shard,
                "kind": d.kind,
                "priority": d.priority,
                "appointment_id": d.appointment_id,
                "recipient": d.recipient,
                "status": DeliveryStatus.QUEUED,
                "attempts": 0,
                "created_at": now,
                "published_at": now,
                "stream_entry_id": entry_id,
            }
            for d, entry_id in zip(deliveries, entry_ids, strict=True)
        ]
        with self.app.app_context():
            for start in range(0, len(rows), 5000):
                db.session.execute(insert(MailDelivery), rows[start : start + 5000])
            db.session.commit()
        return [d.event_id for d in deliveries]

    def publish(self, deliveries, chunk=1000):
        """XADD the events of `deliveries` as the outbox would, on their shard's stream,
        1,000 a round trip."""
        queue, entry_ids = self.queue, []
        queue.ensure_group()
        for start in range(0, len(deliveries), chunk):
            pipe = queue.redis.pipeline(transaction=False)
            for delivery in deliveries[start : start + chunk]:
                stream = queue.stream_key(delivery.priority, delivery.shard or 0)
                pipe.xadd(stream, entry_fields(delivery))
            entry_ids += pipe.execute()
        return entry_ids

    def count_sent(self):
        with self.app.app_context():
            (count,) = db.session.execute(
                select(db.func.count()).where(MailDelivery.status == "sent")
            ).one()
            db.session.rollback()
            return count

    def wait_sent(self, count, timeout):
        """Poll the outbox every 50 ms until `count` rows are sent; return the seconds taken."""
        started = time.perf_counter()
        wait_until(lambda: self.count_sent() >= count, timeout=timeout, what=f"{count} sent")
        return time.perf_counter() - started


@contextmanager
def system(workdir, **kwargs):
    """A System for the `with` block, torn down after it whatever happens."""
    instance = System(workdir, **kwargs)
    try:
        yield instance
    finally:
        instance.close()
