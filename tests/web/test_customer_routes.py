"""The customer's pages through Flask's test client: who may see them, what they answer
to good and bad input, the mail status's JSON, and each route as /openapi.json says.

The pages speak pt-BR unless the request prefers English. The browser's side (booking,
cancelling, the live mail status) is in test_customer_pages.py.
"""

import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from gobarber import shop_time
from gobarber.extensions import db
from gobarber.models import Appointment, MailDelivery
from gobarber.web.pages.customer import TOO_LATE_TO_CANCEL
from tests.apps import shop_slot
from tests.forms import form_token, pages_client

ENGLISH = {"Accept-Language": "en"}
# Every hour a slot: an appointment can then always be booked within the next two hours.
EVERY_HOUR = [(hour, 0) for hour in range(24)]
PAGE_BUDGET = 50 * 1024


@pytest.fixture
def config_overrides():
    return {"SHOP_SLOTS": EVERY_HOUR}


@pytest.fixture
def barber(api):
    return api.provider("Barbeiro Zé")


@pytest.fixture
def customer(api):
    return api.person("Cliente Ana")


@pytest.fixture
def pages(app, customer):
    """The customer, signed in on the pages."""
    return pages_client(app, customer)


def booked(api, customer, barber, when):
    answer = api.book(customer, barber, when)
    assert answer.status_code == 200, answer.json
    return answer.json["id"]


def next_hour(app):
    """The start of the next shop-local hour: bookable, but too close to cancel."""
    with app.app_context():
        return shop_time.hour_start(shop_time.now()) + timedelta(hours=1)


def canceled_through_api(client, customer, appointment_id):
    answer = client.delete(f"/appointments/{appointment_id}", headers=customer.headers)
    assert answer.status_code == 200, answer.json


def alert(page):
    return re.search(r'id="refusal" role="alert">(.*?)</div>', page.text, re.S).group(1)


def upload_avatar(client, person):
    image = io.BytesIO()
    Image.new("RGB", (64, 64), "#8a3b00").save(image, "PNG")
    file = client.post(
        "/files", data={"file": (io.BytesIO(image.getvalue()), "a.png")}, headers=person.headers
    ).json
    changed = client.put("/users", json={"avatar_id": file["id"]}, headers=person.headers)
    assert changed.status_code == 200, changed.json
    return file["path"]


# ---- who may see them -----------------------------------------------------------------

GET_PATHS = [
    "/app/book",
    "/app/book/{barber}",
    "/app/book/{barber}/{day}",
    "/app/appointments",
    "/app/appointments/{appointment}/mail",
]
POST_PATHS = ["/app/book/{barber}", "/app/appointments/{appointment}/cancel"]


@pytest.fixture
def addresses(app, api, barber, customer):
    """Fill the paths above with a real provider, day and appointment."""
    appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=10))
    day = shop_slot(app, days=2).date().isoformat()
    return lambda path: path.format(barber=barber.id, day=day, appointment=appointment)


@pytest.mark.parametrize("path", GET_PATHS)
def test_a_stranger_is_sent_to_sign_in_and_back(client, addresses, path):
    answer = client.get(addresses(path))

    assert answer.status_code == 302
    to = urlsplit(answer.location)
    assert (to.path, parse_qs(to.query)["next"]) == ("/app/sign-in", [addresses(path)])


@pytest.mark.parametrize("path", POST_PATHS)
def test_a_stranger_posting_a_form_is_sent_to_sign_in(client, addresses, path):
    token = form_token(client, "/app/sign-in")

    answer = client.post(addresses(path), data={"csrf_token": token})

    assert answer.status_code == 302
    assert answer.location.startswith("/app/sign-in?next=")


@pytest.mark.parametrize("path", GET_PATHS + POST_PATHS)
def test_a_provider_is_sent_to_their_own_pages(app, barber, addresses, path):
    client = pages_client(app, barber)
    token = form_token(client, "/app/day")

    answer = (
        client.post(addresses(path), data={"csrf_token": token})
        if path in POST_PATHS
        else client.get(addresses(path))
    )

    assert (answer.status_code, answer.location) == (302, "/app/")


@pytest.mark.parametrize("path", POST_PATHS)
def test_a_form_without_its_token_is_refused_with_a_page(pages, addresses, path):
    answer = pages.post(addresses(path), data={"date": "2030-01-01T10:00"})

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert "Este formulário expirou" in answer.text


# ---- choosing -------------------------------------------------------------------------


def test_the_providers_are_listed_with_their_avatars_and_months(client, api, pages, barber):
    other = api.provider("Barbeira Lia")
    path = upload_avatar(client, barber)

    page = pages.get("/app/book")

    assert page.status_code == 200
    assert "<h1>Agende um horário</h1>" in page.text
    assert f'href="/app/book/{barber.id}"' in page.text
    assert f'href="/app/book/{other.id}"' in page.text
    assert f'src="/files/{path}"' in page.text
    assert page.text.index("Barbeira Lia") < page.text.index("Barbeiro Zé")  # by name


def test_the_month_links_the_days_with_free_hours(app, api, pages, barber, customer):
    full_day = shop_slot(app, days=3).date()
    for hour in range(24):
        booked(api, customer, barber, shop_slot(app, days=3, hour=hour))
    open_day = shop_slot(app, days=4).date()

    for day in {full_day, open_day}:
        page = pages.get(f"/app/book/{barber.id}?year={day.year}&month={day.month}")
        assert page.status_code == 200
        assert ('rel="prev"' in page.text) == (day.month != shop_slot(app, days=0).month)
        if day == open_day:
            assert f'href="/app/book/{barber.id}/{open_day.isoformat()}"' in page.text
        else:
            assert f'href="/app/book/{barber.id}/{full_day.isoformat()}"' not in page.text
            assert re.search(
                rf"<span>{full_day.day}<span class=\"visually-hidden\"> \(sem horários livres\)",
                page.text,
            )


def test_this_month_is_the_default_in_the_pages_language(app, pages, barber):
    today = shop_slot(app, days=0).date()

    pt = pages.get(f"/app/book/{barber.id}")
    en = pages.get(f"/app/book/{barber.id}", headers=ENGLISH)

    months_pt = ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho"]
    months_pt += ["agosto", "setembro", "outubro", "novembro", "dezembro"]
    caption = re.compile(r"<caption>(.*?)</caption>")
    assert (
        caption.search(pt.text).group(1) == f"{months_pt[today.month - 1].title()} de {today.year}"
    )
    assert caption.search(en.text).group(1) == f"{today:%B} {today.year}"
    assert 'rel="prev"' not in pt.text  # never before the current month
    assert re.search(r'<th scope="col"><abbr title="domingo">dom\.</abbr></th>', pt.text)
    assert re.search(r'<th scope="col"><abbr title="Sunday">Sun</abbr></th>', en.text)


@pytest.mark.parametrize("query", ["month=13", "month=0", "year=abc", "year=1&month=1"])
def test_a_month_that_is_not_one_is_a_page_saying_so(pages, barber, query):
    answer = pages.get(f"/app/book/{barber.id}?{query}")

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert "Este mês não existe." in answer.text


@pytest.mark.parametrize("path", ["/app/book/{nobody}", "/app/book/{nobody}/2030-01-02"])
def test_no_such_provider_is_a_page_not_json(pages, customer, path):
    for nobody in (987654, customer.id, "abc"):  # no one, a customer, not an id
        answer = pages.get(path.format(nobody=nobody))
        assert answer.status_code == 404
        assert answer.mimetype == "text/html"
        assert "Esta página não existe." in answer.text


@pytest.mark.parametrize("day", ["2030-02-30", "2030-1-02", "20300102", "tomorrow", "0001-01-01"])
def test_a_day_that_is_not_one_is_not_a_page(pages, barber, day):
    answer = pages.get(f"/app/book/{barber.id}/{day}")

    assert answer.status_code == 404
    assert answer.mimetype == "text/html"


def test_the_day_shows_free_hours_as_buttons_and_taken_ones_as_text(app, api, pages, barber):
    other = api.person("Outro Cliente")
    taken = shop_slot(app, days=2, hour=10)
    booked(api, other, barber, taken)
    day = taken.date()

    page = pages.get(f"/app/book/{barber.id}/{day.isoformat()}")

    assert page.status_code == 200
    buttons = re.findall(r'<button type="submit" name="date" value="([^"]+)">', page.text)
    assert buttons == [shop_slot(app, days=2, hour=h).isoformat() for h in range(24) if h != 10]
    assert '<span class="taken">10:00<span class="visually-hidden"> (ocupado)</span>' in page.text
    assert f'action="/app/book/{barber.id}"' in page.text
    assert alert(page) == ""


# ---- booking --------------------------------------------------------------------------


def book_form(pages, barber, when):
    day = when.date().isoformat()
    token = form_token(pages, f"/app/book/{barber.id}/{day}")
    return pages.post(
        f"/app/book/{barber.id}", data={"csrf_token": token, "date": when.isoformat()}
    )


def test_booking_an_hour_goes_to_the_appointments_saying_so(app, pages, barber):
    when = shop_slot(app, days=2, hour=9)

    answer = book_form(pages, barber, when)

    assert answer.status_code == 302
    with app.app_context():
        appointment = db.session.scalar(db.select(Appointment))
        assert appointment.date == when
    assert answer.location == f"/app/appointments#appointment-{appointment.id}"
    listed = pages.get("/app/appointments")
    assert re.search(
        r'<p class="notice" role="status">Agendado: Barbeiro Zé, .+ às 09:00\.</p>', listed.text
    )
    assert f'<li id="appointment-{appointment.id}">' in listed.text


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (lambda app: shop_slot(app, days=2, hour=9), "Este horário não está disponível."),
        (
            lambda app: shop_slot(app, days=200, hour=9),
            "Este horário ainda não está aberto para agendamento.",
        ),
    ],
    ids=["taken", "too-far-ahead"],
)
def test_a_refused_booking_gives_the_day_again_with_the_reason(
    app, api, pages, barber, when, message
):
    moment = when(app)
    booked(api, api.person("Mais Rápido"), barber, shop_slot(app, days=2, hour=9))

    answer = book_form(pages, barber, moment)

    assert answer.status_code == 400
    assert alert(answer) == f'<p class="error">{message}</p>'
    assert moment.isoformat() not in re.findall(r'name="date" value="([^"]+)"', answer.text)


def test_a_refusal_is_told_in_english_to_an_english_browser(app, api, pages, barber):
    when = shop_slot(app, days=2, hour=9)
    booked(api, api.person("Mais Rápido"), barber, when)
    token = form_token(pages, f"/app/book/{barber.id}/{when.date().isoformat()}")

    answer = pages.post(
        f"/app/book/{barber.id}",
        data={"csrf_token": token, "date": when.isoformat()},
        headers=ENGLISH,
    )

    assert answer.status_code == 400
    assert alert(answer) == '<p class="error">Appointment date is not available</p>'


@pytest.mark.parametrize("date", ["", "soon", "2030-13-01T10:00"])
def test_a_date_that_is_not_one_is_refused_with_a_page(pages, barber, date):
    token = form_token(pages, "/app/book")

    answer = pages.post(f"/app/book/{barber.id}", data={"csrf_token": token, "date": date})

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert "Não foi possível ler o horário: deve ser uma data válida." in answer.text


def test_booking_with_no_such_provider_is_a_page(pages, customer):
    token = form_token(pages, "/app/book")

    answer = pages.post("/app/book/987654", data={"csrf_token": token, "date": "2030-01-02T10:00"})

    assert answer.status_code == 404
    assert answer.mimetype == "text/html"


# ---- the appointments -----------------------------------------------------------------


def add_past_appointment(app, customer, barber):
    with app.app_context():
        row = Appointment(
            user_id=customer.id, provider_id=barber.id, date=shop_slot(app, days=-3, hour=9)
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def test_the_appointments_are_upcoming_canceled_and_past(app, client, api, pages, barber, customer):
    later = booked(api, customer, barber, shop_slot(app, days=3, hour=9))
    soon = booked(api, customer, barber, next_hour(app))
    canceled = booked(api, customer, barber, shop_slot(app, days=4, hour=9))
    canceled_through_api(client, customer, canceled)
    past = add_past_appointment(app, customer, barber)

    page = pages.get("/app/appointments")

    assert page.status_code == 200
    sections = {
        name: re.findall(r'<li id="appointment-(\d+)"', section)
        for name, section in re.findall(r'<ul class="list" id="(\w+)"(.*?)</ul>', page.text, re.S)
    }
    assert sections == {
        "upcoming": [str(soon), str(later)],
        "canceled": [str(canceled)],
        "past": [str(past)],
    }
    assert f'action="/app/appointments/{later}/cancel"' in page.text
    assert f'action="/app/appointments/{soon}/cancel"' not in page.text
    assert "Você só pode cancelar agendamentos com 2 horas de antecedência." in page.text
    assert f'data-mail-url="/app/appointments/{canceled}/mail" data-status="queued"' in page.text
    assert "data-mail-status>na fila</span>" in page.text
    assert "pages/customer.js" in page.text


def test_the_too_late_text_is_the_services_refusal(app, client, api, barber, customer):
    soon = booked(api, customer, barber, next_hour(app))

    refused = client.delete(f"/appointments/{soon}", headers=customer.headers)

    assert (refused.status_code, refused.json["error"]) == (401, TOO_LATE_TO_CANCEL)


def test_nothing_booked_yet_says_so(pages):
    page = pages.get("/app/appointments")

    assert 'id="no-upcoming"' in page.text and 'id="no-past"' in page.text
    assert 'id="canceled"' not in page.text
    assert "customer.js" not in page.text


# ---- cancelling -----------------------------------------------------------------------


def cancel_form(pages, appointment_id):
    token = form_token(pages, "/app/appointments")
    return pages.post(f"/app/appointments/{appointment_id}/cancel", data={"csrf_token": token})


def test_cancelling_queues_the_mail_and_shows_it(app, api, pages, barber, customer):
    appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=9))

    answer = cancel_form(pages, appointment)

    assert answer.status_code == 302
    assert answer.location == f"/app/appointments#appointment-{appointment}"
    with app.app_context():
        assert db.session.get(Appointment, appointment).canceled_at is not None
        mail = db.session.scalar(db.select(MailDelivery).where(MailDelivery.kind == "cancellation"))
        assert (mail.kind, mail.status, mail.recipient) == ("cancellation", "queued", barber.email)
    page = pages.get("/app/appointments")
    assert re.search(
        r'<p class="notice" role="status">Cancelado: Barbeiro Zé, .+ às 09:00\.</p>', page.text
    )


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("again", 400, "Este agendamento já foi cancelado."),
        ("too late", 401, "Você só pode cancelar agendamentos com 2 horas de antecedência."),
        ("not mine", 401, "Você não tem permissão para cancelar este agendamento."),
        ("no such", 404, "Agendamento não encontrado."),
    ],
)
def test_a_refused_cancel_is_a_page_with_the_reason(
    app, client, api, pages, barber, customer, case, status, message
):
    if case == "again":
        appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=9))
        canceled_through_api(client, customer, appointment)
    elif case == "too late":
        appointment = booked(api, customer, barber, next_hour(app))
    elif case == "not mine":
        appointment = booked(api, api.person("Outra"), barber, shop_slot(app, days=2, hour=9))
    else:
        appointment = 987654

    answer = cancel_form(pages, appointment)

    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    assert f"<h1>{message}</h1>" in answer.text


# ---- the mail's status, as JSON ---------------------------------------------------------


def set_mail(app, appointment_id, **values):
    with app.app_context():
        mail = db.session.scalar(
            db.select(MailDelivery).where(
                MailDelivery.appointment_id == appointment_id,
                MailDelivery.kind == "cancellation",
            )
        )
        for name, value in values.items():
            setattr(mail, name, value)
        db.session.commit()


@pytest.mark.parametrize(
    ("status", "pt", "en"),
    [
        ("queued", "na fila", "queued"),
        ("sent", "enviado", "sent"),
        ("failed", "falhou", "failed"),
        ("held", "retida", "held"),
    ],
)
def test_the_mail_status_in_the_pages_language(
    app, client, api, pages, barber, customer, status, pt, en
):
    appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=9))
    canceled_through_api(client, customer, appointment)
    set_mail(app, appointment, status=status, attempts=2)
    path = f"/app/appointments/{appointment}/mail"

    answer = pages.get(path)

    assert answer.status_code == 200
    assert answer.json == {"status": status, "label": pt, "attempts": 2}
    assert pages.get(path, headers=ENGLISH).json["label"] == en
    assert answer.headers["Cache-Control"] == "no-store"
    page = pages.get("/app/appointments").text
    assert f'<span class="status {status}" data-mail-status>{pt}</span>' in page
    # The failure's and the hold's explanations show with their status; while the mail
    # is queued the page holds both, inert, for customer.js to show when it changes.
    listed, _, kept = page.partition('<template id="mail-notices">')
    assert ('data-notice="failed"' in listed) == (status == "failed")
    assert ('data-notice="held"' in listed) == (status == "held")
    assert bool(kept) == ("customer.js" in page) == (status == "queued")
    if status == "queued":
        assert 'data-notice="failed"' in kept and 'data-notice="held"' in kept
        assert "<span data-provider></span> do seu cancelamento" in kept


def test_no_mail_status_for_a_standing_or_anothers_appointment(app, client, api, pages, barber):
    other = api.person("Outra")
    standing = booked(api, other, barber, shop_slot(app, days=2, hour=9))
    canceled = booked(api, other, barber, shop_slot(app, days=2, hour=10))
    canceled_through_api(client, other, canceled)

    for appointment in (standing, canceled, 987654):  # another's, another's, nobody's
        answer = pages.get(f"/app/appointments/{appointment}/mail")
        assert answer.status_code == 404
        assert answer.mimetype == "text/html"


def test_a_standing_appointment_of_ones_own_has_no_mail(app, api, pages, barber, customer):
    appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=9))

    assert pages.get(f"/app/appointments/{appointment}/mail").status_code == 404


# ---- the contract and the budget ------------------------------------------------------

DOCUMENTED = {
    ("get", "/app/book"): {"200": "text/html"},
    ("get", "/app/book/{provider_id}"): {
        "200": "text/html",
        "400": "text/html",
        "404": "text/html",
    },
    ("get", "/app/book/{provider_id}/{day}"): {"200": "text/html", "404": "text/html"},
    ("post", "/app/book/{provider_id}"): {"400": "text/html", "404": "text/html", "302": None},
    ("get", "/app/appointments"): {"200": "text/html"},
    ("post", "/app/appointments/{appointment_id}/cancel"): {
        "302": None,
        "400": "text/html",
        "401": "text/html",
        "404": "text/html",
    },
    ("get", "/app/appointments/{appointment_id}/mail"): {
        "200": "application/json",
        "404": "text/html",
    },
}


@pytest.mark.parametrize(("operation", "answers"), DOCUMENTED.items(), ids=str)
def test_each_route_answers_as_documented(client, operation, answers):
    method, path = operation
    declared = client.get("/openapi.json").json["paths"][path][method]

    assert declared["tags"] == ["shop pages"]
    assert declared["security"] == [{"pageSession": []}]
    for status, media in answers.items():
        content = declared["responses"][status].get("content", {})
        assert list(content) == ([media] if media else [])
    assert {"302", "503"} <= set(declared["responses"])
    if method == "post":
        form = declared["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert "csrf_token" in form["schema"]["required"]


def test_the_mail_status_answer_is_the_documented_shape(app, client, api, pages, barber, customer):
    schema = client.get("/openapi.json").json["paths"]["/app/appointments/{appointment_id}/mail"]
    schema = schema["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    appointment = booked(api, customer, barber, shop_slot(app, days=2, hour=9))
    canceled_through_api(client, customer, appointment)

    answer = pages.get(f"/app/appointments/{appointment}/mail").json

    assert set(answer) == set(schema["required"]) == set(schema["properties"])
    assert answer["status"] in schema["properties"]["status"]["enum"]


def test_every_page_is_under_budget_and_names_no_other_host(app, client, api, pages, customer):
    barbers = [api.provider(f"Barbeiro Número {n} da Silva Santos") for n in range(30)]
    for barber in barbers:
        upload_avatar(client, barber)
    for n in range(20):
        booked(api, customer, barbers[n], shop_slot(app, days=2 + n, hour=9))
        canceled = booked(api, customer, barbers[n], shop_slot(app, days=2 + n, hour=10))
        canceled_through_api(client, customer, canceled)
        set_mail(app, canceled, status="failed")  # a failed mail's notice is the longest
        add_past_appointment(app, customer, barbers[n])
    day = shop_slot(app, days=2).date().isoformat()
    paths = [
        "/app/book",
        f"/app/book/{barbers[0].id}",
        f"/app/book/{barbers[0].id}/{day}",
        "/app/appointments",
        "/app/book/987654",
    ]

    for path in paths:
        for headers in ({}, ENGLISH):
            page = pages.get(path, headers=headers)
            assert page.status_code in (200, 404), path
            assert len(page.data) < PAGE_BUDGET, (path, len(page.data))
            assert re.findall(r"https?://", page.text) == [], path
    listed = pages.get("/app/appointments").text
    assert len(re.findall(r'<li id="appointment-', listed)) == 60


def test_the_static_files_are_served(client):
    for name in ("customer.js", "customer.css"):
        answer = client.get(f"/static/pages/{name}")
        assert answer.status_code == 200
        answer.close()
