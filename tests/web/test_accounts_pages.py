"""The accounts' pages: sign up, in and out, forgot and reset password.

In a real headless Chromium: signing up signs in, a wrong password is told, and a
forgotten password goes from the form through the mail the pipeline sends to signing in
with the new one. Through the test client: forms refused field by field, stale forms,
the sign-in throttle, where `next` may lead, and the two languages.
`GOBARBER_SCREENSHOTS=<folder>` saves each page shown as <folder>/<page>.png, 1280x900.
"""

import re
import time

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from gobarber.extensions import db
from gobarber.models import PasswordReset
from tests.browsers import failures, screenshot
from tests.forms import form_token

ERROR = re.compile(r'<p class="error" id="([^"]+)-error">(.*?)</p>')
HEADING = re.compile(r"<h1>(.*?)</h1>")
PT, EN = {"Accept-Language": "pt-BR"}, {"Accept-Language": "en"}
NEW_PASSWORD = "brand-new-9"


def post_form(client, path, fields, headers=PT, token_from=None):
    """Post a page's form as a browser does: with the token its page gave."""
    token = form_token(client, token_from or path)
    return client.post(path, data={"csrf_token": token, **fields}, headers=headers)


def errors(page):
    return dict(ERROR.findall(page.text))


def heading(page):
    return HEADING.search(page.text).group(1)


def api_signs_in(client, email, password):
    return client.post("/sessions", json={"email": email, "password": password}).status_code


def reset_token(app, user_id):
    """The token the newest reset mail of the user carries (as the worker writes it)."""
    with app.app_context():
        query = select(PasswordReset).where(PasswordReset.user_id == user_id)
        row = db.session.scalars(query.order_by(PasswordReset.id.desc())).first()
        return row.token(app.config["SECRET_KEY"])


# ---- in a browser ------------------------------------------------------------------------


def fill(browser, **fields):
    for field_id, value in fields.items():
        element = browser.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)


def submit(browser):
    """Send the page's form and wait for the page that answers it."""
    # A mark on this page's window, gone from the next one's. (Not staleness_of: while
    # a page goes, Chromium may answer a question about its element with an error.)
    browser.execute_script("window.formSent = true")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 10, ignored_exceptions=[WebDriverException]).until(
        lambda b: b.execute_script(
            "return window.formSent !== true && document.readyState === 'complete'"
        ),
        "the form's answer never came",
    )


def h1(browser):
    return browser.find_element(By.TAG_NAME, "h1").text


def sign_in(browser, url, email, password):
    browser.get(f"{url}/app/sign-in")
    fill(browser, email=email, password=password)
    submit(browser)


@pytest.mark.timeout(120)
def test_signing_up_signs_in(browser, live_url):
    browser.get(f"{live_url}/app/sign-up")
    assert h1(browser) == "Criar uma conta"
    screenshot(browser, "sign-up")
    fill(browser, name="Barbeiro Novo", email="novo@barber.example.com", password="secret123")
    browser.find_element(By.ID, "provider").click()

    submit(browser)

    assert browser.find_element(By.CSS_SELECTOR, "p.notice").text == "Bem-vindo(a), Barbeiro Novo!"
    assert browser.current_url.startswith(f"{live_url}/app/day")
    assert browser.find_element(By.CSS_SELECTOR, "header form button").text == "Sair"
    assert failures(browser) == []


@pytest.mark.timeout(120)
def test_a_wrong_password_is_told_and_signs_nobody_in(api, browser, live_url):
    person = api.provider("Barbeiro Zé")
    browser.get(f"{live_url}/app/sign-in")
    screenshot(browser, "sign-in")

    sign_in(browser, live_url, person.email, "not-the-password")

    error = browser.find_element(By.ID, "password-error")
    assert error.text == "E-mail ou senha incorretos."
    assert browser.find_element(By.ID, "email").get_attribute("value") == person.email
    screenshot(browser, "sign-in-refused")
    browser.get(f"{live_url}/app/day")
    assert browser.current_url == f"{live_url}/app/sign-in?next=/app/day"
    assert failures(browser, 401) == []


def mailed_link(worker, smtp_server, live_url):
    """Run the worker until the reset mail arrives; return the link it carries."""
    deadline = time.monotonic() + 20
    while not smtp_server.messages:
        assert time.monotonic() < deadline, "the reset mail never arrived"
        worker.loop()
    [message] = smtp_server.messages
    text = message.get_body(("plain",)).get_content()
    return re.search(re.escape(live_url) + r"/reset-password\?token=[A-Za-z0-9_.-]+", text).group()


@pytest.mark.sends_mail
@pytest.mark.timeout(120)
def test_a_forgotten_password_through_the_mail_to_signing_in_with_the_new_one(
    app, api, browser, live_url, worker, smtp_server
):
    app.config["APP_WEB_URL"] = live_url  # the mail's link opens this server
    person = api.provider("Barbeiro Zé")
    browser.get(f"{live_url}/app/sign-in")
    browser.find_element(By.LINK_TEXT, "Esqueceu sua senha?").click()
    WebDriverWait(browser, 10).until(seen.title_contains("Esqueceu"), "no forgot page")
    screenshot(browser, "forgot-password")
    fill(browser, email=person.email)

    submit(browser)

    assert h1(browser) == "Confira seu e-mail"
    screenshot(browser, "forgot-password-sent")
    browser.get(mailed_link(worker, smtp_server, live_url))
    assert browser.current_url.startswith(f"{live_url}/app/reset-password?token=")
    assert h1(browser) == "Escolha uma nova senha"
    screenshot(browser, "reset-password")
    fill(browser, password=NEW_PASSWORD, password_confirmation=NEW_PASSWORD)
    submit(browser)

    assert browser.current_url == f"{live_url}/app/sign-in"
    notice = browser.find_element(By.CSS_SELECTOR, "p.notice").text
    assert notice == "Sua senha foi trocada. Entre com a nova."
    fill(browser, email=person.email, password=person.password)
    submit(browser)
    assert browser.find_element(By.ID, "password-error").text == "E-mail ou senha incorretos."
    fill(browser, email=person.email, password=NEW_PASSWORD)
    submit(browser)
    assert browser.current_url.startswith(f"{live_url}/app/day")
    assert failures(browser, 401) == []


# ---- through the test client -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fields", "refused"),
    [
        (
            "/app/sign-in",
            {"email": "ana@", "password": ""},
            {"email": "não é um endereço de e-mail válido", "password": "não pode ficar vazio"},
        ),
        (
            "/app/sign-up",
            {"name": "Ana", "email": "ana@barber.example.com", "password": "ã" * 40},
            {"password": "no máximo 72 bytes em UTF-8"},
        ),
        ("/app/forgot-password", {"email": "ana"}, {"email": "não é um endereço de e-mail válido"}),
        (
            "/app/reset-password",
            {"token": "abc", "password": "12345", "password_confirmation": "54321"},
            {
                "password": "no mínimo 6 caracteres",
                "password_confirmation": "deve ser igual à senha",
            },
        ),
    ],
)
def test_a_refused_form_comes_back_with_each_fields_message(client, path, fields, refused):
    answer = post_form(client, path, fields)

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert errors(answer) == refused
    for name in refused:
        assert re.search(rf'aria-describedby="[^"]*{name}-error" aria-invalid="true"', answer.text)


def test_signing_up_with_a_taken_email_is_refused_on_its_field(client, api):
    taken = api.person("Ana")

    answer = post_form(
        client, "/app/sign-up", {"name": "Outra", "email": taken.email, "password": "secret123"}
    )

    assert answer.status_code == 400
    assert errors(answer) == {"email": "Já existe um usuário com este e-mail."}
    assert 'value="Outra"' in answer.text


def test_an_expired_or_invalid_link_is_told_and_changes_nothing(client, api):
    person = api.person("Ana")
    fields = {"token": "not.a.token", "password": NEW_PASSWORD}

    answer = post_form(
        client, "/app/reset-password", {**fields, "password_confirmation": NEW_PASSWORD}
    )

    assert answer.status_code == 400
    assert "Este link não é válido." in answer.text
    assert api_signs_in(client, person.email, person.password) == 200


@pytest.mark.parametrize(
    "path", ["/app/sign-in", "/app/sign-up", "/app/forgot-password", "/app/reset-password"]
)
def test_a_form_without_its_token_is_a_page_saying_so(client, path):
    fields = {"name": "Ana", "email": "ana@barber.example.com", "password": "secret123"}

    answer = client.post(path, data=fields, headers=PT)

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert heading(answer) == "Este formulário expirou. Volte, recarregue a página e envie de novo."
    assert api_signs_in(client, "ana@barber.example.com", "secret123") == 401


def test_a_token_from_another_session_is_refused(app, client):
    other = app.test_client()
    fields = {"name": "Ana", "email": "ana@barber.example.com", "password": "secret123"}

    answer = client.post(
        "/app/sign-up", data={**fields, "csrf_token": form_token(other, "/app/sign-up")}
    )

    assert answer.status_code == 400
    assert api_signs_in(client, "ana@barber.example.com", "secret123") == 401


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATE_LIMITS": True, "RATE_LIMIT_SIGN_IN_ACCOUNT": "3 per 15 minutes"}],
    ids=["throttled"],
)
def test_failed_sign_ins_past_the_limit_get_a_429_page_even_for_the_right_password(client, api):
    person = api.person("Ana")
    wrong = {"email": person.email, "password": "not-the-password"}

    refused = [post_form(client, "/app/sign-in", wrong).status_code for _ in range(3)]
    locked = post_form(client, "/app/sign-in", {**wrong, "password": person.password})

    assert refused == [401, 401, 401]
    assert locked.status_code == 429
    assert locked.mimetype == "text/html"
    assert int(locked.headers["Retry-After"]) > 0
    assert heading(locked) == "Tentativas demais; tente de novo mais tarde."
    assert client.get("/app/day").headers["Location"].startswith("/app/sign-in")


@pytest.mark.parametrize(
    ("next_page", "lands_on"),
    [
        ("/app/profile", "/app/profile"),
        ("/app/day?date=2030-01-02", "/app/day?date=2030-01-02"),
        ("https://evil.example/app/profile", "/app/day"),
        ("//evil.example/app/profile", "/app/day"),
        ("/admin/queue", "/app/day"),
        ("javascript:alert(1)", "/app/day"),
        ("", "/app/day"),
    ],
)
def test_next_leads_only_to_the_pages(client, api, next_page, lands_on):
    person = api.provider("Barbeiro Zé")
    page = f"/app/sign-in?next={next_page}"
    fields = {"email": person.email, "password": person.password, "next": next_page}

    answer = post_form(client, "/app/sign-in", fields, token_from=page)

    assert (answer.status_code, answer.headers["Location"]) == (302, lands_on)


def test_the_sign_in_form_keeps_where_it_was_sent_from(client):
    page = client.get("/app/sign-in?next=/app/profile")

    assert re.search(r'<input[^>]*name="next"[^>]*value="/app/profile"', page.text)


@pytest.mark.parametrize(("provider", "home"), [(True, "/app/day"), (False, "/app/appointments")])
def test_each_person_lands_on_their_own_page(client, api, provider, home):
    person = api.person("Alguém", provider=provider)

    signed_in = post_form(
        client, "/app/sign-in", {"email": person.email, "password": person.password}
    )

    assert signed_in.headers["Location"] == home
    assert client.get("/app/").headers["Location"] == home


def test_signing_out_ends_the_session(client, api):
    person = api.provider("Barbeiro Zé")
    post_form(client, "/app/sign-in", {"email": person.email, "password": person.password})

    without_token = client.post("/app/sign-out")
    still_in = client.get("/app/day").status_code
    out = post_form(client, "/app/sign-out", {}, token_from="/app/day")

    assert (without_token.status_code, still_in) == (400, 200)
    assert (out.status_code, out.headers["Location"]) == (302, "/app/sign-in")
    assert client.get("/app/day").headers["Location"] == "/app/sign-in?next=/app/day"
    assert client.get("/app/").headers["Location"] == "/app/sign-in"


def test_a_reset_ends_every_earlier_session_and_token(app, client, api):
    person = api.provider("Barbeiro Zé")
    earlier = app.test_client()
    post_form(earlier, "/app/sign-in", {"email": person.email, "password": person.password})
    post_form(client, "/app/forgot-password", {"email": person.email})
    token = reset_token(app, person.id)

    changed = post_form(
        client,
        f"/app/reset-password?token={token}",
        {"token": token, "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
    )

    assert (changed.status_code, changed.headers["Location"]) == (302, "/app/sign-in")
    assert earlier.get("/app/day").headers["Location"].startswith("/app/sign-in")
    assert client.get("/notifications", headers=person.headers).status_code == 401
    assert api_signs_in(client, person.email, person.password) == 401
    assert api_signs_in(client, person.email, NEW_PASSWORD) == 200


def test_forgot_answers_the_same_for_any_address(client, api):
    person = api.person("Ana")

    known = post_form(client, "/app/forgot-password", {"email": person.email})
    unknown = post_form(client, "/app/forgot-password", {"email": "nobody@barber.example.com"})

    assert (known.status_code, unknown.status_code) == (200, 200)
    assert heading(known) == heading(unknown) == "Confira seu e-mail"
    assert known.text.replace(person.email, "X") == unknown.text.replace(
        "nobody@barber.example.com", "X"
    )


@pytest.mark.parametrize(
    ("path", "portuguese", "english"),
    [
        ("/app/sign-in", "Entrar", "Sign in"),
        ("/app/sign-up", "Criar uma conta", "Create an account"),
        ("/app/forgot-password", "Esqueceu sua senha?", "Forgot your password?"),
        ("/app/reset-password?token=x", "Escolha uma nova senha", "Choose a new password"),
    ],
)
def test_pt_br_unless_the_browser_prefers_english(client, path, portuguese, english):
    in_portuguese = client.get(path, headers={"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"})
    in_english = client.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    by_default = client.get(path)

    assert (heading(in_portuguese), heading(in_english), heading(by_default)) == (
        portuguese,
        english,
        portuguese,
    )
    assert '<html lang="en">' in in_english.text
    assert '<html lang="pt-BR">' in in_portuguese.text


def test_a_refusal_speaks_the_browsers_language(client):
    fields = {"email": "ana@", "password": ""}

    english = post_form(client, "/app/sign-in", fields, headers=EN)

    assert errors(english) == {
        "email": "not a valid e-mail address",
        "password": "must not be empty",
    }
