"""The customer's pages in a real headless Chromium: sign up, book tomorrow's first free
hour, cancel it and watch the mail to the barber go (or fail) without a reload; two
customers race for a day's last hour; booking by keyboard alone; a phone's width; English.

`GOBARBER_SCREENSHOTS=<folder>` saves each page shown as <folder>/<page>.png, 1280x900
(the phone's at 375 px wide).
"""

import io
import threading
import uuid

import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from gobarber.extensions import db
from gobarber.models import Appointment, Notification, User
from tests.browsers import ask_for, failures, headless_chromium
from tests.browsers import screenshot as save_screenshot

pytestmark = pytest.mark.sends_mail

SCREEN = (1280, 900)
PHONE = (375, 812)
# The page polls every second while the mail is queued.
LIVE = 20


# ---- the browser ----------------------------------------------------------------------


@pytest.fixture
def shopper(browser):
    """The test's browser, at a desktop's size, asking for pt-BR."""
    browser.set_window_size(*SCREEN)
    ask_for(browser, "pt-BR,pt")
    return browser


@pytest.fixture
def screenshot():
    """`screenshot(browser, name)`: the README's pictures, when GOBARBER_SCREENSHOTS is set."""
    return save_screenshot


def wait(browser, condition, message, seconds=10):
    return WebDriverWait(browser, seconds).until(condition, message)


def element(browser, css):
    return browser.find_element(By.CSS_SELECTOR, css)


def mark_the_page(browser):
    """Leave a mark that only a reload would wipe."""
    browser.execute_script("window.stillTheSamePage = true")


def not_reloaded(browser):
    return browser.execute_script("return window.stillTheSamePage === true")


# ---- the shop -------------------------------------------------------------------------


@pytest.fixture
def barber(client, api):
    """A provider with an avatar, through the API."""
    barber = api.provider("Barbeiro Zé")
    image = io.BytesIO()
    Image.new("RGB", (96, 96), "#8a3b00").save(image, "PNG")
    image.seek(0)
    file = client.post("/files", data={"file": (image, "ze.png")}, headers=barber.headers)
    assert file.status_code == 200, file.json
    changed = client.put("/users", json={"avatar_id": file.json["id"]}, headers=barber.headers)
    assert changed.status_code == 200, changed.json
    return barber


def sign_up(browser, url, name):
    """Sign a customer up on the pages; they land on their appointments."""
    browser.get(f"{url}/app/sign-up")
    email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@barber.example.com"
    element(browser, "#name").send_keys(name)
    element(browser, "#email").send_keys(email)
    element(browser, "#password").send_keys("secret123")
    element(browser, "main form button[type=submit]").click()
    wait(browser, seen.url_contains("/app/appointments"), "sign-up did not land on the list")
    return email


def user_id(app, email):
    with app.app_context():
        return db.session.scalar(db.select(User.id).where(User.email == email))


def open_day(browser, barber, day, screenshot=None):
    """From any page: Book, the barber, the month that holds `day`, the day."""
    element(browser, "header nav a[href='/app/book']").click()
    wait(browser, seen.url_contains("/app/book"), "the providers did not open")
    if screenshot:
        screenshot(browser, "book-providers")
    element(browser, f"a[href='/app/book/{barber.id}']").click()
    wait(browser, seen.presence_of_element_located((By.TAG_NAME, "caption")), "no month")
    day_link = f"a[href='/app/book/{barber.id}/{day.isoformat()}']"
    if not browser.find_elements(By.CSS_SELECTOR, day_link):  # the day is next month's
        element(browser, "a[rel=next]").click()
        wait(browser, seen.url_contains(f"month={day.month}"), "the next month did not open")
    if screenshot:
        screenshot(browser, "book-month")
    element(browser, day_link).click()
    wait(browser, seen.url_contains(day.isoformat()), "the day did not open")


def book_first_free_hour(browser, barber, day, screenshot=None):
    """Book the day's first free hour; return the button's time."""
    open_day(browser, barber, day, screenshot)
    if screenshot:
        screenshot(browser, "book-day")
    first = element(browser, "button[name=date]")
    shown = " ".join(first.text.split())
    first.click()
    wait(browser, seen.url_contains("/app/appointments"), "booking did not land on the list")
    return shown


def cancel_the_upcoming_one(browser):
    element(browser, "#upcoming button[type=submit]").click()
    return wait(
        browser,
        seen.presence_of_element_located((By.CSS_SELECTOR, "#canceled [data-mail-status]")),
        "the canceled appointment is not listed with its mail",
    )


def mail_status_becomes(browser, worker, label):
    """Wait, running the mail worker, until the page shows the mail's status as `label`."""

    def shown(browser):
        worker.loop()
        return element(browser, "#canceled [data-mail-status]").text == label

    wait(browser, shown, f"the mail's status never showed {label!r}", LIVE)


# ---- the journeys ---------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_customer_books_tomorrow_cancels_and_sees_the_mail_sent(
    app, barber, shopper, live_url, slot, worker, smtp_server, screenshot
):
    tomorrow = slot(days=1, hour=8)
    sign_up(shopper, live_url, "Cliente Ana")

    shown = book_first_free_hour(shopper, barber, tomorrow.date(), screenshot)

    assert shown == "Agendar às 08:00"
    notice = element(shopper, "main .notice").text
    assert notice.startswith("Agendado: Barbeiro Zé, ") and notice.endswith(" às 08:00.")
    upcoming = element(shopper, "#upcoming li")
    assert "Barbeiro Zé" in upcoming.text and "08:00" in upcoming.text
    assert element(shopper, "#upcoming li img.avatar").get_attribute("src").startswith(live_url)
    screenshot(shopper, "appointments")

    status = cancel_the_upcoming_one(shopper)
    assert status.text == "na fila"
    assert element(shopper, "main .notice").text.startswith("Cancelado: Barbeiro Zé, ")
    screenshot(shopper, "appointments-mail-queued")
    mark_the_page(shopper)

    mail_status_becomes(shopper, worker, "enviado")

    assert not_reloaded(shopper)
    assert [envelope.rcpt_tos for envelope in smtp_server.envelopes] == [[barber.email]]
    assert "cancel" in smtp_server.messages[0]["Subject"].lower()
    assert "sent" in element(shopper, "#canceled [data-mail-status]").get_attribute("class")
    assert shopper.find_elements(By.CSS_SELECTOR, "#canceled [data-notice]") == []
    origins = shopper.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [name for name in origins if not name.startswith(live_url)] == []
    assert failures(shopper) == []
    screenshot(shopper, "appointments-mail-sent")


@pytest.mark.timeout(120)
def test_a_refused_mail_ends_failed_and_tells_the_customer_what_it_means(
    app, barber, shopper, live_url, slot, worker, smtp_server, screenshot
):
    smtp_server.refuse(barber.email)
    email = sign_up(shopper, live_url, "Cliente Bia")
    book_first_free_hour(shopper, barber, slot(days=1).date())
    cancel_the_upcoming_one(shopper)
    mark_the_page(shopper)

    mail_status_becomes(shopper, worker, "falhou")

    notice = element(shopper, "#canceled .mail [data-notice=failed]")
    assert notice.is_displayed()
    assert notice.text.startswith(
        "Não foi possível entregar o e-mail que avisa Barbeiro Zé do seu cancelamento"
    )
    assert "avise a barbearia você mesmo" in notice.text
    assert not_reloaded(shopper)
    assert smtp_server.messages == []
    with app.app_context():
        told = db.session.scalars(
            db.select(Notification.content).where(Notification.user_id == user_id(app, email))
        ).all()
    assert len(told) == 1 and told[0].startswith("Não foi possível avisar Barbeiro Zé")
    assert failures(shopper) == []
    screenshot(shopper, "appointments-mail-failed")


@pytest.mark.timeout(120)
def test_two_customers_race_for_the_last_free_hour_one_wins_the_other_is_told(
    app, api, barber, shopper, live_url, slot, screenshot
):
    day = slot(days=2).date()
    early_bird = api.person("Cliente Madrugador")
    for hour in range(8, 19):  # every hour of the day but the last, 19:00
        assert api.book(early_bird, barber, slot(days=2, hour=hour)).status_code == 200
    with headless_chromium() as rival:
        rival.set_window_size(*SCREEN)
        ask_for(rival, "pt-BR,pt")
        browsers = {"Cliente Caio": shopper, "Cliente Duda": rival}
        for name, browser in browsers.items():
            sign_up(browser, live_url, name)
            open_day(browser, barber, day)
            hours = browser.find_elements(By.CSS_SELECTOR, "button[name=date]")
            assert [" ".join(hour.text.split()) for hour in hours] == ["Agendar às 19:00"]
        start = threading.Barrier(len(browsers))

        def click(browser):
            button = element(browser, "button[name=date]")
            start.wait(timeout=10)
            button.click()

        racers = [threading.Thread(target=click, args=(b,)) for b in browsers.values()]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)

        def outcome(browser):
            if "/app/appointments" in browser.current_url:
                return "booked"
            if browser.find_elements(By.CSS_SELECTOR, "#refusal .error"):
                return "told"
            return False

        outcomes = {
            name: wait(browser, outcome, f"{name} saw neither")
            for name, browser in browsers.items()
        }
        assert sorted(outcomes.values()) == ["booked", "told"]
        who = {result: name for name, result in outcomes.items()}
        winner, loser = who["booked"], browsers[who["told"]]
        assert element(loser, "#refusal").get_attribute("role") == "alert"
        assert element(loser, "#refusal").text == "Este horário não está disponível."
        assert loser.find_elements(By.CSS_SELECTOR, "button[name=date]") == []
        assert element(loser, "#no-free-hours").is_displayed()
        screenshot(loser, "book-day-refused")
        assert "19:00" in element(browsers[winner], "#upcoming li").text
    with app.app_context():
        holders = db.session.scalars(
            db.select(User.name)
            .join(Appointment, Appointment.user_id == User.id)
            .where(Appointment.date == slot(days=2, hour=19), Appointment.canceled_at.is_(None))
        ).all()
    assert holders == [winner]


def tab_to(browser, css, limit=60):
    """Press Tab until the focus is on an element matching `css`; the focus must show."""
    for _ in range(limit):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.execute_script("return document.activeElement.matches(arguments[0])", css):
            visible = browser.execute_script(
                "const e = document.activeElement;"
                "return e.matches(':focus-visible') && getComputedStyle(e).outlineStyle !== 'none'"
            )
            assert visible, f"the focus on {css} does not show"
            return
    raise AssertionError(f"{limit} presses of Tab never reached {css}")


def press(browser, key):
    ActionChains(browser).send_keys(key).perform()


@pytest.mark.timeout(120)
def test_booking_with_the_keyboard_alone(app, barber, shopper, live_url, slot):
    tomorrow = slot(days=1, hour=8)
    sign_up(shopper, live_url, "Cliente Eva")

    tab_to(shopper, "a[href='/app/book']")
    press(shopper, Keys.ENTER)
    wait(shopper, seen.url_to_be(f"{live_url}/app/book"), "Enter did not open the providers")
    tab_to(shopper, f"a[href='/app/book/{barber.id}']")
    press(shopper, Keys.ENTER)
    wait(shopper, seen.presence_of_element_located((By.TAG_NAME, "caption")), "no month")
    day_link = f"a[href='/app/book/{barber.id}/{tomorrow.date().isoformat()}']"
    if not shopper.find_elements(By.CSS_SELECTOR, day_link):
        tab_to(shopper, "a[rel=next]")
        press(shopper, Keys.ENTER)
        wait(shopper, seen.url_contains(f"month={tomorrow.month}"), "no next month")
    tab_to(shopper, day_link)
    press(shopper, Keys.ENTER)
    wait(shopper, seen.url_contains(tomorrow.date().isoformat()), "Enter did not open the day")
    tab_to(shopper, "button[name=date]")
    press(shopper, Keys.SPACE)

    wait(shopper, seen.url_contains("/app/appointments"), "Space did not book the hour")
    assert "08:00" in element(shopper, "#upcoming li").text
    tab_to(shopper, "#upcoming button[type=submit]")  # and the cancel button is reachable
    assert failures(shopper) == []


@pytest.mark.timeout(120)
def test_every_customer_page_fits_a_phone(app, api, barber, shopper, live_url, slot, screenshot):
    api.provider("Barbearia Internacional de Cortes Clássicos e Contemporâneos do Centro")
    tomorrow = slot(days=1).date()
    sign_up(shopper, live_url, "Cliente Gil")
    book_first_free_hour(shopper, barber, tomorrow)
    cancel_the_upcoming_one(shopper)
    book_first_free_hour(shopper, barber, tomorrow)
    month = f"/app/book/{barber.id}?year={tomorrow.year}&month={tomorrow.month}"
    pages = {
        "book-providers-phone": "/app/book",
        "book-month-phone": month,
        "book-day-phone": f"/app/book/{barber.id}/{tomorrow.isoformat()}",
        "appointments-phone": "/app/appointments",
    }
    shopper.set_window_size(*PHONE)

    for name, path in pages.items():
        shopper.get(f"{live_url}{path}")
        wait(shopper, seen.presence_of_element_located((By.TAG_NAME, "h1")), f"{path} empty")
        widths = shopper.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[1], f"{path} is wider than a phone: {widths}"
        screenshot(shopper, name)
    assert failures(shopper) == []


@pytest.mark.timeout(120)
def test_an_english_browser_gets_english_pages(
    app, barber, shopper, live_url, slot, worker, smtp_server, screenshot
):
    ask_for(shopper, "en-US,en")
    tomorrow = slot(days=1, hour=8)
    sign_up(shopper, live_url, "Customer Fay")

    shown = book_first_free_hour(shopper, barber, tomorrow.date())

    assert element(shopper, "html").get_attribute("lang") == "en"
    assert shown == "Book at 8:00 AM"  # the narrow space before AM read as a space
    assert element(shopper, "main .notice").text.startswith("Booked: Barbeiro Zé, ")
    assert element(shopper, "h1").text == "My appointments"
    cancel_the_upcoming_one(shopper)
    assert element(shopper, "#canceled [data-mail-status]").text == "queued"
    mark_the_page(shopper)
    mail_status_becomes(shopper, worker, "sent")
    assert not_reloaded(shopper)
    screenshot(shopper, "appointments-en")
    shopper.get(f"{live_url}/app/book/{barber.id}?year={tomorrow.year}&month={tomorrow.month}")
    assert element(shopper, "caption").text == f"{tomorrow:%B} {tomorrow.year}"
    assert element(shopper, "h1").text == "Book with Barbeiro Zé"
    assert failures(shopper) == []
