"""The profile page: name, e-mail, password and avatar, as `PUT /users` and `POST /files`
change them, refusing what they refuse.

The browser's tests change a name, upload an avatar with its preview, and change the
password; the test client's check each refusal and the answers /openapi.json declares.
`GOBARBER_SCREENSHOTS=<folder>` saves each page shown as <folder>/<page>.png, 1280x900.
"""

import io
import re

import pytest
from PIL import Image
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from gobarber.extensions import db
from gobarber.models import User
from tests.browsers import failures, screenshot
from tests.documents import Contract
from tests.forms import TOKEN, form_token, pages_client
from tests.uploads import noise_png, stored_files

ERROR = re.compile(r'<p class="error" id="([^"]+)-error">(.*?)</p>')
PT = {"Accept-Language": "pt-BR"}


def png(color="teal", side=64):
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buffer, "PNG")
    return buffer.getvalue()


def save_profile(client, **changes):
    """Post the profile form: the name and e-mail shown, with `changes` over them."""
    page = client.get("/app/profile").text
    fields = {
        "csrf_token": TOKEN.search(page).group(1),
        "name": re.search(r'id="name" name="name" type="text" value="([^"]*)"', page).group(1),
        "email": re.search(r'id="email" name="email" type="email" value="([^"]*)"', page).group(1),
    }
    return client.post("/app/profile", data={**fields, **changes}, headers=PT)


def upload_avatar(client, data, filename="me.png"):
    fields = {"csrf_token": form_token(client), "avatar": (io.BytesIO(data), filename)}
    return client.post("/app/profile/avatar", data=fields, headers=PT)


def errors(page):
    return dict(ERROR.findall(page.text))


def api_user(client, person, password=None):
    """The person as signing in through the API shows them."""
    body = {"email": person.email, "password": password or person.password}
    return client.post("/sessions", json=body).json["user"]


def documented(client, method, path, response):
    """Assert the answer is one /openapi.json declares for the route, of its media type."""
    Contract(client.get("/openapi.json").json).answer(method, path, response)


@pytest.fixture
def ana(api):
    return api.person("Cliente Ana")


@pytest.fixture
def pages(app, ana):
    return pages_client(app, ana)


# ---- in a browser ------------------------------------------------------------------------


def open_profile(browser, url, person):
    browser.get(f"{url}/app/sign-in?next=/app/profile")
    browser.find_element(By.ID, "email").send_keys(person.email)
    browser.find_element(By.ID, "password").send_keys(person.password)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 10).until(seen.title_contains("Perfil"), "the profile did not open")


def submit(browser, form_id):
    """Send a form and wait for the page that answers it."""
    # A mark on this page's window, gone from the next one's. (Not staleness_of: while
    # a page goes, Chromium may answer a question about its element with an error.)
    browser.execute_script("window.formSent = true")
    browser.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()
    WebDriverWait(browser, 10, ignored_exceptions=[WebDriverException]).until(
        lambda b: b.execute_script(
            "return window.formSent !== true && document.readyState === 'complete'"
        ),
        "the form's answer never came",
    )


def notice(browser):
    return WebDriverWait(browser, 10).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "p.notice")), "no notice"
    )


def picture_shown(browser):
    """The preview's address, once its image is loaded; else None."""
    return browser.execute_script(
        "const img = document.getElementById('avatar-preview');"
        "return !img.hidden && img.complete && img.naturalWidth > 0 ? img.src : null"
    )


@pytest.mark.timeout(120)
def test_a_new_name_and_a_new_avatar_with_its_preview(client, ana, browser, live_url, tmp_path):
    open_profile(browser, live_url, ana)
    assert browser.find_element(By.ID, "avatar-caption").text == "Nenhuma foto ainda."
    screenshot(browser, "profile")

    name = browser.find_element(By.ID, "name")
    name.clear()
    name.send_keys("Ana Maria")
    submit(browser, "profile-form")

    assert notice(browser).text == "Seu perfil foi salvo."
    assert browser.find_element(By.ID, "name").get_attribute("value") == "Ana Maria"
    assert api_user(client, ana)["name"] == "Ana Maria"

    picture = tmp_path / "me.png"
    picture.write_bytes(png("orange"))
    browser.find_element(By.ID, "avatar").send_keys(str(picture))
    preview = WebDriverWait(browser, 10).until(picture_shown, "no preview of the chosen file")
    assert preview.startswith("blob:")
    caption = browser.find_element(By.ID, "avatar-caption").text
    assert caption == "Prévia: envie a foto para mantê-la."
    screenshot(browser, "profile-avatar-preview")
    submit(browser, "avatar-form")

    assert notice(browser).text == "Sua nova foto foi salva."
    shown = WebDriverWait(browser, 10).until(picture_shown, "the new avatar is not shown")
    avatar = api_user(client, ana)["avatar"]
    assert avatar is not None
    assert shown == f"{live_url}/files/{avatar['path']}"
    assert browser.find_element(By.ID, "avatar-caption").text == "Sua foto."
    assert failures(browser) == []


@pytest.mark.timeout(120)
def test_a_password_change_needs_the_old_one_and_keeps_this_session_only(
    app, client, ana, browser, live_url
):
    elsewhere = pages_client(app, ana)
    open_profile(browser, live_url, ana)

    def change(old, new, again):
        for field_id, value in (("old_password", old), ("password", new)):
            browser.find_element(By.ID, field_id).send_keys(value)
        browser.find_element(By.ID, "password_confirmation").send_keys(again)
        submit(browser, "profile-form")

    change("not-my-password", "new-secret-1", "new-secret-1")
    error = WebDriverWait(browser, 10).until(
        seen.presence_of_element_located((By.ID, "old_password-error")), "no refusal"
    )
    assert error.text == "A senha não confere."
    assert browser.find_element(By.ID, "old_password").get_attribute("aria-invalid") == "true"
    # The refusal is a 401, as PUT /users answers it; Chromium logs it as a failed load.
    assert [message[-30:] for message in failures(browser)] == ["a status of 401 (UNAUTHORIZED)"]
    screenshot(browser, "profile-refused")

    change(ana.password, "new-secret-1", "new-secret-1")

    assert notice(browser).text == "Seu perfil foi salvo."
    browser.get(f"{live_url}/app/profile")  # still signed in, here
    assert browser.find_element(By.TAG_NAME, "h1").text == "Perfil"
    assert elsewhere.get("/app/profile").headers["Location"].startswith("/app/sign-in")
    assert client.get("/notifications", headers=ana.headers).status_code == 401
    assert api_user(client, ana, "new-secret-1")["email"] == ana.email
    assert failures(browser) == []


# ---- through the test client -------------------------------------------------------------


def test_the_profile_shows_the_person_and_its_forms(client, pages):
    page = pages.get("/app/profile", headers=PT)

    documented(client, "get", "/app/profile", page)
    assert page.status_code == 200
    assert 'value="Cliente Ana"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert 'accept="image/jpeg,image/png,image/gif,image/webp"' in page.text
    assert "Uma imagem JPEG, PNG, GIF ou WebP, de até 5 MB." in page.text


def test_strangers_are_sent_to_sign_in(client):
    page = client.get("/app/profile")

    documented(client, "get", "/app/profile", page)
    assert page.headers["Location"] == "/app/sign-in?next=/app/profile"


def test_a_new_email_is_the_apis_email(client, ana, pages):
    saved = save_profile(pages, email="  Ana.Nova@Barber.Example.com ")

    documented(client, "post", "/app/profile", saved)
    assert (saved.status_code, saved.headers["Location"]) == (302, "/app/profile")
    body = {"email": "ana.nova@barber.example.com", "password": ana.password}
    assert client.post("/sessions", json=body).status_code == 200


@pytest.mark.parametrize(
    ("changes", "status", "refused"),
    [
        ({"name": "   "}, 400, {"name": "não pode ficar vazio"}),
        ({"name": "Ana\x1b[2J"}, 400, {"name": "caracteres de controle não são permitidos"}),
        ({"email": "ana@"}, 400, {"email": "não é um endereço de e-mail válido"}),
        (
            {"password": "new-secret-1"},
            400,
            {"old_password": "obrigatória quando uma nova senha é informada"},
        ),
        (
            {"old_password": "secret123"},
            400,
            {"password": "obrigatória quando a senha atual é informada"},
        ),
        (
            {"old_password": "secret123", "password": "new-secret-1"},
            400,
            {"password_confirmation": "obrigatória quando uma nova senha é informada"},
        ),
        (
            {
                "old_password": "secret123",
                "password": "new-secret-1",
                "password_confirmation": "new-secret-2",
            },
            400,
            {"password_confirmation": "deve ser igual à senha"},
        ),
        (
            {"old_password": "secret123", "password": "12345"},
            400,
            {"password": "no mínimo 6 caracteres"},
        ),
        (
            {
                "old_password": "wrong-one",
                "password": "new-secret-1",
                "password_confirmation": "new-secret-1",
            },
            401,
            {"old_password": "A senha não confere."},
        ),
    ],
)
def test_a_refused_change_gets_the_form_back_with_the_fields_message(
    client, ana, pages, changes, status, refused
):
    answer = save_profile(pages, **changes)

    documented(client, "post", "/app/profile", answer)
    assert answer.status_code == status
    assert errors(answer) == refused
    assert api_user(client, ana)["name"] == "Cliente Ana"


def test_an_email_someone_else_has_is_refused(client, api, pages):
    bia = api.person("Cliente Bia")

    answer = save_profile(pages, email=bia.email)

    documented(client, "post", "/app/profile", answer)
    assert answer.status_code == 400
    assert errors(answer) == {"email": "Já existe um usuário com este e-mail."}


def test_a_profile_form_without_its_token_is_refused(client, ana, pages):
    answer = pages.post("/app/profile", data={"name": "Outra", "email": ana.email}, headers=PT)

    assert answer.status_code == 400
    assert "expirou" in answer.text
    assert api_user(client, ana)["name"] == "Cliente Ana"


def test_an_uploaded_avatar_is_stored_as_post_files_stores_it(app, client, ana, pages):
    # Larger than a JSON body may be: the avatar's POST takes an upload's limit.
    first = upload_avatar(pages, noise_png(200), "big.png")
    second = upload_avatar(pages, png("navy"), "small.png")

    documented(client, "post", "/app/profile/avatar", second)
    assert (first.status_code, second.status_code) == (302, 302)
    assert second.headers["Location"] == "/app/profile"
    avatar = api_user(client, ana)["avatar"]
    # The first avatar went when the second replaced it, as PUT /users does.
    assert stored_files(app) == ([avatar["path"]], [avatar["path"]])
    page = pages.get("/app/profile")
    assert f'src="/files/{avatar["path"]}"' in page.text
    with app.app_context():
        assert db.session.get(User, ana.id).avatar.owner_id == ana.id


@pytest.mark.parametrize(
    ("data", "filename", "refused"),
    [
        (
            b"<html>not a picture</html>",
            "me.png",
            "O arquivo deve ser uma imagem (JPEG, PNG, GIF ou WebP).",
        ),
        (b"", "me.png", "O arquivo está vazio."),
    ],
)
def test_what_is_not_an_image_is_refused_on_the_form(
    app, client, ana, pages, data, filename, refused
):
    answer = upload_avatar(pages, data, filename)

    documented(client, "post", "/app/profile/avatar", answer)
    assert answer.status_code == 400
    assert errors(answer) == {"avatar": refused}
    assert api_user(client, ana)["avatar"] is None
    assert stored_files(app) == ([], [])


def test_no_file_at_all_is_refused_on_the_form(client, pages):
    answer = pages.post(
        "/app/profile/avatar", data={"csrf_token": form_token(pages, "/app/profile")}, headers=PT
    )

    assert answer.status_code == 400
    assert errors(answer) == {"avatar": "Escolha um arquivo de imagem para enviar."}


@pytest.mark.parametrize("config_overrides", [{"MAX_UPLOAD_MB": 1}], ids=["1 MB"])
def test_an_image_past_the_upload_limit_is_refused(app, client, ana, pages):
    # Within the request's room for the form around the file, past the file's own limit.
    over = upload_avatar(pages, noise_png(1300), "big.png")
    # Past the request's limit: refused before the form is read.
    far_over = upload_avatar(pages, noise_png(2300), "huge.png")

    documented(client, "post", "/app/profile/avatar", over)
    documented(client, "post", "/app/profile/avatar", far_over)
    assert over.status_code == 413
    assert errors(over) == {"avatar": "A imagem passa dos 1 MB permitidos."}
    assert far_over.status_code == 413
    assert far_over.mimetype == "text/html" and "Traceback" not in far_over.text
    assert stored_files(app) == ([], [])


def test_an_avatar_without_its_token_is_refused(app, client, ana, pages):
    answer = pages.post(
        "/app/profile/avatar", data={"avatar": (io.BytesIO(png()), "me.png")}, headers=PT
    )

    assert answer.status_code == 400
    assert "expirou" in answer.text
    assert stored_files(app) == ([], [])


def test_the_profile_is_for_providers_too(app, client, api):
    provider = api.provider("Barbeiro Zé")
    pages = pages_client(app, provider)

    saved = save_profile(pages, name="Zé da Navalha")
    page = pages.get("/app/profile")

    assert saved.status_code == 302
    assert 'value="Zé da Navalha"' in page.text
    assert "pages/provider.js" in page.text  # the header's count is live here too
