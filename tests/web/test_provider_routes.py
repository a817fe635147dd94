"""The provider's pages through the test client: who may see them, what they show, and
that every answer is one `/openapi.json` declares for its route, JSON in its shape."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from flask import render_template_string

from tests.documents import Contract
from tests.forms import form_token, pages_sign_in

PT, EN = {"Accept-Language": "pt-BR"}, {"Accept-Language": "en"}
PAGE_ROUTES = ["/app/day", "/app/day/appointments", "/app/notifications"]
JSON_ROUTES = ["/app/notifications/feed", "/app/notifications/unread"]
# Any address in a page's markup, but for the page's own host.
ADDRESS = re.compile(r"https?://([^/\"'\s>]+)")
BUDGET = 50 * 1024


@pytest.fixture
def documented(client):
    return Contract(client.get("/openapi.json").json).answered


@pytest.fixture
def provider(api):
    return api.provider("Barbeiro Zé")


@pytest.fixture
def customer(api):
    return api.person("Cliente Ana")


def tomorrow(app):
    return (datetime.now(ZoneInfo(app.config["SHOP_TIMEZONE"])) + timedelta(days=1)).date()


def listed(page, list_id):
    """The text of each item of a page's list, markup dropped."""
    block = re.search(rf'<ul[^>]*id="{list_id}"[^>]*>(.*?)</ul>', page.text, re.S).group(1)
    items = re.findall(r"<li[^>]*>(.*?)</li>", block, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


# ---- who may see them ----------------------------------------------------------------


@pytest.mark.parametrize("path", PAGE_ROUTES + JSON_ROUTES)
def test_a_stranger_is_sent_to_sign_in_and_back(client, documented, path):
    answer = documented("get", path, client.get(path))

    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/app/sign-in?next={path}"


def test_a_stranger_marks_nothing_read(client, documented):
    token = form_token(client, "/app/sign-in")

    answer = client.post("/app/notifications/1/read", data={"csrf_token": token})

    documented("post", "/app/notifications/{notification_id}/read", answer)
    assert answer.headers["Location"].startswith("/app/sign-in")


@pytest.mark.parametrize("path", PAGE_ROUTES + JSON_ROUTES)
def test_a_customer_is_sent_to_their_own_pages(client, documented, customer, path):
    pages_sign_in(client, customer)

    answer = documented("get", path, client.get(path))

    assert (answer.status_code, answer.headers["Location"]) == (302, "/app/")


def test_a_customer_marks_nothing_read(client, documented, api, provider, customer, slot):
    api.book(customer, provider, slot(days=1, hour=9))
    notification = client.get("/notifications", headers=provider.headers).json[0]
    pages_sign_in(client, customer)

    answer = client.post(
        f"/app/notifications/{notification['_id']}/read",
        data={"csrf_token": form_token(client, "/app/sign-in")},
    )

    documented("post", "/app/notifications/{notification_id}/read", answer)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/app/")
    assert client.get("/notifications", headers=provider.headers).json[0]["read"] is False


# ---- the day ---------------------------------------------------------------------------


def test_the_day_lists_its_bookings_in_shop_time_with_the_days_around(
    app, client, documented, api, provider, customer, slot
):
    other = api.provider("Outro Barbeiro")
    late = api.person("Cliente Bia")
    api.book(late, provider, slot(days=1, hour=11))
    api.book(customer, provider, slot(days=1, hour=9))
    api.book(customer, other, slot(days=1, hour=10))
    api.book(customer, provider, slot(days=2, hour=9))
    day = tomorrow(app)
    pages_sign_in(client, provider)

    page = documented("get", "/app/day", client.get(f"/app/day?date={day}", headers=PT))

    assert page.status_code == 200
    assert listed(page, "appointments") == ["09:00 Cliente Ana", "11:00 Cliente Bia"]
    heading = re.search(r"<h1>(.*?)</h1>", page.text).group(1)
    assert heading == format_date(day, "full", locale="pt_BR")  # "terça-feira, 1 de ..."
    assert f'href="/app/day?date={day - timedelta(days=1)}" rel="prev"' in page.text
    assert f'href="/app/day?date={day + timedelta(days=1)}" rel="next"' in page.text
    assert 'href="/app/day">Hoje</a>' in page.text
    assert 'id="no-appointments" hidden' in page.text


def test_the_days_heading_and_hours_follow_the_browsers_language(
    app, client, api, provider, customer, slot
):
    api.book(customer, provider, slot(days=1, hour=14))
    day = tomorrow(app)
    pages_sign_in(client, provider)

    english = client.get(f"/app/day?date={day}", headers=EN)
    portuguese = client.get(f"/app/day?date={day}", headers=PT)

    assert re.search(r"<h1>(.*?)</h1>", english.text).group(1) == (
        f"{day:%A}, {day:%B} {day.day}, {day.year}"
    )
    assert listed(english, "appointments") == ["2:00 PM Cliente Ana"]
    assert listed(portuguese, "appointments") == ["14:00 Cliente Ana"]


def test_the_day_is_today_in_shop_time_unless_asked(app, client, documented, provider):
    pages_sign_in(client, provider)
    today = datetime.now(ZoneInfo(app.config["SHOP_TIMEZONE"])).date()

    page = documented("get", "/app/day", client.get("/app/day", headers=EN))

    assert page.status_code == 200
    assert f'value="{today}"' in page.text
    assert "Today</a>" not in page.text
    assert listed(page, "appointments") == []
    assert 'id="no-appointments">No appointments on this day.' in page.text


def test_the_days_list_as_json_is_what_the_page_shows(
    app, client, documented, api, provider, customer, slot
):
    booked = api.book(customer, provider, slot(days=1, hour=9)).json
    day = tomorrow(app)
    pages_sign_in(client, provider)

    feed = documented(
        "get", "/app/day/appointments", client.get(f"/app/day/appointments?date={day}")
    )

    assert feed.json == {
        "date": day.isoformat(),
        "appointments": [
            {
                "key": str(booked["id"]),
                "id": booked["id"],
                "time": "09:00",
                "start": slot(days=1, hour=9).isoformat(),
                "customer": "Cliente Ana",
            }
        ],
    }
    assert feed.headers["Cache-Control"] == "no-store"


def test_a_canceled_booking_leaves_the_day(app, client, api, provider, customer, slot):
    booked = api.book(customer, provider, slot(days=1, hour=9)).json
    pages_sign_in(client, provider)
    client.delete(f"/appointments/{booked['id']}", headers=customer.headers)

    feed = client.get(f"/app/day/appointments?date={tomorrow(app)}")

    assert feed.json["appointments"] == []


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2019-02-30", "deve ser uma data válida"),
        ("amanhã", "deve ser uma data válida"),
        ("", "deve ser uma data válida"),
    ],
)
def test_a_date_that_is_none_gets_the_form_back_with_its_message(
    client, documented, provider, date, message
):
    pages_sign_in(client, provider)

    page = documented("get", "/app/day", client.get(f"/app/day?date={date}", headers=PT))
    feed = documented(
        "get", "/app/day/appointments", client.get(f"/app/day/appointments?date={date}")
    )

    assert page.status_code == 400
    assert re.search(r'<p class="error" id="date-error">(.*?)</p>', page.text).group(1) == message
    assert 'aria-invalid="true"' in page.text
    assert feed.status_code == 400
    assert re.search(r"<h1>(.*?)</h1>", feed.text).group(1) == message


def test_the_calendars_last_days_are_pages_not_crashes(client, provider):
    pages_sign_in(client, provider)

    last = client.get("/app/day?date=9999-12-30", headers=EN)
    past_it = client.get("/app/day?date=9999-12-31", headers=EN)

    assert last.status_code == 200
    assert 'href="/app/day?date=9999-12-31" rel="next"' in last.text
    assert past_it.status_code == 400
    assert re.search(r'id="date-error">(.*?)</p>', past_it.text).group(1) == "out of range"


@pytest.mark.parametrize("config_overrides", [{"SHOP_TIMEZONE": "Asia/Tokyo"}], ids=["Tokyo"])
def test_a_day_past_the_calendar_in_shop_time_is_a_page_not_a_crash(client, provider):
    # 30 December 9999 in UTC is already 31 December in Tokyo: the last day there is.
    pages_sign_in(client, provider)

    page = client.get("/app/day?date=9999-12-30T20:00:00Z", headers=EN)

    assert page.status_code == 400
    assert page.mimetype == "text/html" and "Traceback" not in page.text


# ---- notifications ---------------------------------------------------------------------


def test_notifications_show_the_unread_marked_and_the_count(
    client, documented, api, provider, customer, slot
):
    api.book(customer, provider, slot(days=1, hour=9))
    api.book(customer, provider, slot(days=1, hour=10))
    first = client.get("/notifications", headers=provider.headers).json[-1]
    client.put(f"/notifications/{first['_id']}", headers=provider.headers)
    pages_sign_in(client, provider)

    page = documented("get", "/app/notifications", client.get("/app/notifications", headers=PT))
    count = documented("get", "/app/notifications/unread", client.get("/app/notifications/unread"))

    assert page.status_code == 200
    items = listed(page, "notifications")
    assert len(items) == 2
    assert items[0].startswith("Novo agendamento de Cliente Ana para") and "Não lida" in items[0]
    assert "Marcar como lida" in items[0]
    assert "Não lida" not in items[1] and "Marcar como lida" not in items[1]
    assert count.json == {"count": 1}
    assert re.search(r'id="unread-count"[^>]*>(.*?)</span>', page.text).group(1) == "1"


def test_the_notifications_as_json_are_what_the_page_shows(
    client, documented, api, provider, customer, slot
):
    api.book(customer, provider, slot(days=1, hour=9))
    shown = client.get("/notifications", headers=provider.headers).json[0]
    pages_sign_in(client, provider)

    feed = documented("get", "/app/notifications/feed", client.get("/app/notifications/feed"))

    [notification] = feed.json["notifications"]
    assert notification["id"] == int(shown["_id"])
    assert notification["content"] == shown["content"]
    assert notification["created_at"] == shown["createdAt"]
    assert notification["read"] is False
    assert notification["key"] == f"{shown['_id']}:unread"
    assert notification["mark_url"] == f"/app/notifications/{shown['_id']}/read"


def test_marking_one_read_is_the_apis_mark_read(client, documented, api, provider, customer, slot):
    api.book(customer, provider, slot(days=1, hour=9))
    shown = client.get("/notifications", headers=provider.headers).json[0]
    pages_sign_in(client, provider)

    marked = client.post(
        f"/app/notifications/{shown['_id']}/read",
        data={"csrf_token": form_token(client, "/app/notifications")},
    )

    documented("post", "/app/notifications/{notification_id}/read", marked)
    assert (marked.status_code, marked.headers["Location"]) == (302, "/app/notifications")
    assert client.get("/notifications", headers=provider.headers).json[0]["read"] is True
    assert client.get("/app/notifications/unread").json == {"count": 0}
    page = client.get("/app/notifications", headers=PT)
    assert '<p class="notice" role="status">Marcada como lida.</p>' in page.text
    assert re.search(r'id="unread-count"[^>]*>(.*?)</span>', page.text).group(1) == ""


def test_another_providers_notification_is_not_found(
    client, documented, api, provider, customer, slot
):
    other = api.provider("Outro Barbeiro")
    api.book(customer, other, slot(days=1, hour=9))
    theirs = client.get("/notifications", headers=other.headers).json[0]
    pages_sign_in(client, provider)

    refused = client.post(
        f"/app/notifications/{theirs['_id']}/read",
        data={"csrf_token": form_token(client, "/app/sign-in")},
    )

    documented("post", "/app/notifications/{notification_id}/read", refused)
    assert refused.status_code == 404
    assert "Traceback" not in refused.text
    assert client.get("/notifications", headers=other.headers).json[0]["read"] is False


def test_marking_read_without_the_forms_token_is_refused(
    client, documented, api, provider, customer, slot
):
    api.book(customer, provider, slot(days=1, hour=9))
    shown = client.get("/notifications", headers=provider.headers).json[0]
    pages_sign_in(client, provider)

    refused = client.post(f"/app/notifications/{shown['_id']}/read", headers=PT)

    documented("post", "/app/notifications/{notification_id}/read", refused)
    assert refused.status_code == 400
    assert "expirou" in refused.text
    assert client.get("/notifications", headers=provider.headers).json[0]["read"] is False


def test_the_header_count_is_on_every_provider_page_and_no_one_elses(
    app, client, api, provider, customer, slot
):
    api.book(customer, provider, slot(days=1, hour=9))
    badge = re.compile(r'id="unread-count"[^>]*>(.*?)</span>')
    pages_sign_in(client, provider)

    for path in ("/app/day", "/app/notifications", "/app/profile"):
        assert badge.search(client.get(path).text).group(1) == "1", path
    # Mails render templates without a request: the count asks for none.
    with app.app_context():
        assert render_template_string("{{ unread_count is defined }}") == "False"


# ---- the budget -------------------------------------------------------------------------


def test_each_page_is_small_and_needs_no_other_host(app, client, api, provider, slot):
    customers = [api.person(f"Cliente {n} com um nome bem comprido") for n in range(12)]
    for hour, person in zip(range(8, 20), customers, strict=True):
        assert api.book(person, provider, slot(days=1, hour=hour)).status_code == 200
    for person in customers[:8]:
        api.book(person, provider, slot(days=2, hour=9 + customers.index(person)))
    pages_sign_in(client, provider)

    for path in (f"/app/day?date={tomorrow(app)}", "/app/notifications", "/app/profile"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert len(page.data) < BUDGET, (path, len(page.data))
        assert ADDRESS.findall(page.text) == [], path
    assert len(listed(client.get("/app/notifications"), "notifications")) == 20
