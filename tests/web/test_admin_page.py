"""The queue page in a real headless Chromium: an admin retries a dead letter."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from gobarber.extensions import db
from gobarber.models import User
from tests.forms import form_token

pytestmark = pytest.mark.sends_mail


def make_admin(app, person):
    with app.app_context():
        db.session.get(User, person.id).admin = True
        db.session.commit()


def sign_in(browser, url, person):
    browser.get(f"{url}/admin/queue")
    WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.ID, "email")))
    browser.find_element(By.ID, "email").send_keys(person.email)
    browser.find_element(By.ID, "password").send_keys(person.password)
    browser.find_element(By.ID, "sign-in").click()


def test_an_admin_sees_the_dead_letter_retries_it_and_it_leaves_the_list(
    app, api, shop, worker, smtp_server, browser, live_url
):
    smtp_server.refuse(shop.provider.email)
    canceled = shop.cancellation()
    worker.loop()
    event_id = shop.delivery(canceled["id"]).event_id
    operator = api.person("Operadora")
    make_admin(app, operator)

    sign_in(browser, live_url, operator)

    row = WebDriverWait(browser, 10).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-event-id="{event_id}"]'))
    )
    assert "550" in row.text
    assert shop.provider.email in row.text
    smtp_server.mailbox.refuse_recipients.clear()  # the address was fixed
    row.find_element(By.CSS_SELECTOR, "button.retry").click()

    WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.ID, "no-dead-letters")))
    assert "Put back 1 mail(s)." in browser.find_element(By.CSS_SELECTOR, ".flash").text
    worker.loop()
    assert [m["Message-ID"] for m in smtp_server.messages] == [f"<{event_id}@gobarber.com>"]
    assert shop.delivery(canceled["id"]).status == "sent"


def test_a_user_who_is_not_an_admin_is_refused(api, browser, live_url):
    customer = api.person("Cliente Curioso")

    sign_in(browser, live_url, customer)

    refused = WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.ID, "refused")))
    assert "is not an operator" in refused.text
    assert browser.find_elements(By.ID, "streams") == []


def test_wrong_password_stays_on_the_sign_in_form(api, browser, live_url):
    customer = api.person("Alguém")
    customer.password = "not-the-password"

    sign_in(browser, live_url, customer)

    error = WebDriverWait(browser, 10).until(
        seen.presence_of_element_located((By.ID, "login-error"))
    )
    assert error.text == "Password does not match"


def test_routes_refuse_strangers_and_forms_without_their_token(app, api, client):
    assert client.get("/admin/queue").status_code == 302
    customer = api.person("Cliente")
    credentials = {"email": customer.email, "password": customer.password}
    client.post("/admin/login", data={**credentials, "csrf_token": form_token(client)})
    assert client.get("/admin/queue").status_code == 403
    token = form_token(client)
    assert (
        client.post("/admin/queue/retry", data={"all": "1", "csrf_token": token}).status_code == 403
    )
    make_admin(app, customer)
    assert client.get("/admin/queue").status_code == 200
    assert client.post("/admin/queue/retry", data={"all": "1"}).status_code == 400  # no token
