"""Cancellation mails past a customer's daily cap are held, and operators release them.

With `CANCELLATION_MAILS_PER_DAY=2`, a customer's third cancel of the day still answers
200, but its mail is `held`: never on a stream, never relayed, until an operator
releases it (`flask queue release`, the admin page); then the worker sends it as usual.
"""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from gobarber.extensions import db
from gobarber.mail import outbox
from gobarber.models import MailDelivery, User
from gobarber.shop_time import now
from tests.forms import TOKEN, admin_sign_in
from tests.scrape import metric_values
from tests.streams import run_until_settled

pytestmark = pytest.mark.sends_mail

CAP = 2


@pytest.fixture
def config_overrides():
    return {"CANCELLATION_MAILS_PER_DAY": CAP}


def stream_events(queue):
    """The event ids on the default stream, oldest first."""
    return [fields["event_id"] for _, fields in queue.redis.xrange(queue.stream_key("default"))]


def event_of(shop, canceled):
    return shop.delivery(canceled["id"]).event_id


@pytest.fixture
def cancels(shop):
    """Three cancels by one customer in a day: the third one's mail is held."""
    return [shop.cancellation() for _ in range(CAP + 1)]


@pytest.fixture
def held(shop, cancels):
    return event_of(shop, cancels[-1])


def held_gauge(client):
    return metric_values(client)[("gobarber_mail_held", ())]


def test_the_cancel_past_the_cap_answers_200_with_its_mail_held(shop, cancels, client):
    statuses = [canceled["cancellation_mail"]["status"] for canceled in cancels]
    shown = shop.mail_status(cancels[-1]["id"])
    listed = client.get("/appointments", headers=shop.customer.headers).json

    assert statuses == ["queued", "queued", "held"]
    assert cancels[-1]["canceled_at"] is not None
    assert set(cancels[-1]) == set(cancels[0])
    assert (shown["status"], shown["attempts"], shown["sent_at"]) == ("held", 0, None)
    assert listed == []


def test_a_held_mail_is_never_published_relayed_or_sent(
    app, shop, cancels, held, queue, worker, smtp_server
):
    sent = [event_of(shop, canceled) for canceled in cancels[:CAP]]

    assert stream_events(queue) == sent
    with app.app_context():
        relayed = outbox.relay(unpublished_after=0, republish_after=0, queue=queue)
    run_until_settled(
        worker, lambda: len(smtp_server.messages) == CAP, what="the two queued mails sent"
    )
    worker.loop()

    assert relayed == 0
    # Sent over concurrent sessions: in any order, each once.
    sent_ids = sorted(m["Message-ID"] for m in smtp_server.messages)
    assert sent_ids == sorted(f"<{e}@gobarber.com>" for e in sent)
    row = shop.delivery(cancels[-1]["id"])
    assert (row.status, row.published_at, row.stream_entry_id) == ("held", None, None)
    assert held not in stream_events(queue)


def test_the_cap_is_per_customer_and_per_day(app, shop, cancels, api):
    with app.app_context():
        db.session.execute(
            update(MailDelivery).values(created_at=now() - timedelta(hours=24, minutes=1))
        )
        db.session.commit()
    a_day_later = shop.cancellation()
    shop.customer = api.person("Outra Cliente")
    other = shop.cancellation()

    assert cancels[-1]["cancellation_mail"]["status"] == "held"
    assert a_day_later["cancellation_mail"]["status"] == "queued"
    assert other["cancellation_mail"]["status"] == "queued"


def test_flask_queue_held_lists_it(flask_cli, shop, held):
    table = flask_cli("queue", "held").output
    [listed] = json.loads(flask_cli("queue", "held", "--json").output)
    state = json.loads(flask_cli("queue", "status", "--json").output)

    assert held in table and shop.customer.email in table
    assert (listed["event_id"], listed["recipient"], listed["customer"]) == (
        held,
        shop.provider.email,
        shop.customer.email,
    )
    assert state["held"] == 1
    assert state["deliveries"]["total"]["held"] == 1
    assert "held mails: 1" in flask_cli("queue", "status").output


def test_release_all_queues_publishes_and_the_worker_sends_it(
    flask_cli, shop, cancels, held, queue, worker, smtp_server
):
    released = flask_cli("queue", "release", "--all").output

    assert f"released: {held}" in released and "1 mail(s) released." in released
    assert held in stream_events(queue)
    run_until_settled(
        worker, lambda: len(smtp_server.messages) == CAP + 1, what="the released mail sent"
    )
    assert f"<{held}@gobarber.com>" in [m["Message-ID"] for m in smtp_server.messages]
    assert shop.mail_status(cancels[-1]["id"])["status"] == "sent"
    assert "Nothing to release." in flask_cli("queue", "release", "--all").output
    assert "No held mails." in flask_cli("queue", "held").output


def test_release_one_event_leaves_the_others_held(flask_cli, shop, cancels, held, queue):
    other = event_of(shop, shop.cancellation())

    output = flask_cli("queue", "release", other).output

    assert "1 mail(s) released." in output
    assert other in stream_events(queue) and held not in stream_events(queue)
    assert [x["event_id"] for x in json.loads(flask_cli("queue", "held", "--json").output)] == [
        held
    ]
    usage = flask_cli("queue", "release")
    assert (usage.exit_code, "give one EVENT_ID or --all" in usage.output) == (2, True)


def test_metrics_count_held_mails(flask_cli, client, held):
    before = held_gauge(client)
    flask_cli("queue", "release", held)

    assert (before, held_gauge(client)) == (1, 0)


# ---- the admin page -------------------------------------------------------------------


def token_in(html):
    """The CSRF token a piece of a page carries."""
    return TOKEN.search(html).group(1)


def signed_in_admin(app, api, client):
    operator = api.person("Operadora")
    with app.app_context():
        db.session.get(User, operator.id).admin = True
        db.session.commit()
    credentials = {"email": operator.email, "password": operator.password}
    signed = admin_sign_in(client, **credentials)
    assert signed.status_code == 302, signed.data


def test_the_admin_page_lists_the_held_mail_and_releases_it(
    app, api, client, shop, held, queue, worker, smtp_server
):
    signed_in_admin(app, api, client)
    page = client.get("/admin/queue").get_data(as_text=True)
    row = re.search(rf'<tr class="held-mail" data-event-id="{held}">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert shop.customer.email in row.group(1)
    token = token_in(row.group(1))

    answer = client.post("/admin/queue/release", data={"csrf_token": token, "event_id": held})
    after = client.get("/admin/queue").get_data(as_text=True)

    assert answer.status_code == 302
    assert "Released 1 mail(s)." in after and 'id="no-held-mails"' in after
    assert held in stream_events(queue)
    run_until_settled(
        worker, lambda: len(smtp_server.messages) == CAP + 1, what="the released mail sent"
    )
    assert f"<{held}@gobarber.com>" in [m["Message-ID"] for m in smtp_server.messages]
