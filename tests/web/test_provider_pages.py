"""The provider's pages in a real headless Chromium: the day and the notifications follow
new bookings without a reload, a notification is marked read, and the pages fit a phone.

`GOBARBER_SCREENSHOTS=<folder>` saves each page shown as <folder>/<page>.png, 1280x900.
"""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from tests.browsers import failures
from tests.browsers import screenshot as save_screenshot

# A poll every 3 s: a new booking shows within one or two.
LIVE = 15
PHONE = (375, 800)


@pytest.fixture
def screenshot(browser):
    """`screenshot(name)`: the README's pictures, when GOBARBER_SCREENSHOTS is set."""
    browser.set_window_size(1280, 900)
    return lambda name: save_screenshot(browser, name)


def sign_in(browser, url, person):
    browser.get(f"{url}/app/sign-in")
    browser.find_element(By.ID, "email").send_keys(person.email)
    browser.find_element(By.ID, "password").send_keys(person.password)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()


def wait(browser, condition, message, seconds=10):
    return WebDriverWait(browser, seconds).until(condition, message)


def text_of(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def mark_the_page(browser):
    """Leave a mark that only a reload would wipe."""
    browser.execute_script("window.stillTheSamePage = true")


def not_reloaded(browser):
    return browser.execute_script("return window.stillTheSamePage === true")


@pytest.mark.timeout(120)
def test_a_booking_appears_in_the_day_and_the_count_without_a_reload(
    api, browser, live_url, slot, screenshot
):
    provider = api.provider("Barbeiro Zé")
    customer = api.person("Cliente Ana")
    sign_in(browser, live_url, provider)
    wait(browser, seen.presence_of_element_located((By.ID, "appointments")), "no day page")
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    tomorrow = slot(days=1, hour=10).date().isoformat()
    wait(browser, seen.url_contains(f"date={tomorrow}"), "the next day did not open")
    assert browser.find_element(By.ID, "no-appointments").is_displayed()
    mark_the_page(browser)

    assert api.book(customer, provider, slot(days=1, hour=10)).status_code == 200

    wait(
        browser,
        lambda b: "Cliente Ana" in text_of(b, "appointments"),
        "the booking never showed in the day",
        LIVE,
    )
    assert text_of(browser, "appointments").split() == ["10:00", "Cliente", "Ana"]
    assert not browser.find_element(By.ID, "no-appointments").is_displayed()
    wait(browser, lambda b: text_of(b, "unread-count") == "1", "the count stayed", LIVE)
    assert not_reloaded(browser)
    assert failures(browser) == []
    screenshot("provider-day")


@pytest.mark.timeout(120)
def test_a_notification_appears_without_a_reload_and_is_marked_read(
    client, api, browser, live_url, slot, screenshot
):
    provider = api.provider("Barbeiro Zé")
    customer = api.person("Cliente Ana")
    api.book(customer, provider, slot(days=1, hour=9))
    sign_in(browser, live_url, provider)
    link = wait(
        browser,
        seen.element_to_be_clickable((By.CSS_SELECTOR, "a[href='/app/notifications']")),
        "no link to the notifications",
    )
    link.click()
    wait(browser, seen.title_contains("Notificações"), "the notifications did not open")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#notifications > li")) == 1
    mark_the_page(browser)

    api.book(api.person("Cliente Bia"), provider, slot(days=1, hour=11))

    items = wait(
        browser,
        lambda b: (
            len(found := b.find_elements(By.CSS_SELECTOR, "#notifications > li")) == 2 and found
        ),
        "the new notification never showed",
        LIVE,
    )
    assert "Cliente Bia" in items[0].text and "Não lida" in items[0].text
    wait(browser, lambda b: text_of(b, "unread-count") == "2", "the count stayed", LIVE)
    assert not_reloaded(browser)
    screenshot("provider-notifications")

    # From the keyboard: the new one's button, then Enter.
    items[0].find_element(By.CSS_SELECTOR, "button").send_keys(Keys.ENTER)

    notice = wait(
        browser,
        seen.presence_of_element_located((By.CSS_SELECTOR, "p.notice")),
        "no word that it was marked",
    )
    assert notice.text == "Marcada como lida."
    assert text_of(browser, "unread-count") == "1"
    first = browser.find_elements(By.CSS_SELECTOR, "#notifications > li")[0]
    assert "Cliente Bia" in first.text and first.find_elements(By.TAG_NAME, "button") == []
    shown = client.get("/notifications", headers=provider.headers).json
    assert [n["read"] for n in shown] == [True, False]
    assert failures(browser) == []


@pytest.mark.timeout(120)
def test_the_provider_pages_fit_a_phone_and_load_only_from_this_server(
    api, browser, live_url, slot
):
    provider = api.provider("Barbeiro Zé com um nome bem comprido")
    customer = api.person("Cliente Ana Maria de Souza Albuquerque")
    api.book(customer, provider, slot(days=1, hour=9))
    sign_in(browser, live_url, provider)
    wait(browser, seen.presence_of_element_located((By.ID, "appointments")), "no day page")
    browser.set_window_size(*PHONE)
    tomorrow = slot(days=1, hour=9).date().isoformat()

    for path in (f"/app/day?date={tomorrow}", "/app/notifications", "/app/profile"):
        browser.get(live_url + path)
        wait(browser, seen.presence_of_element_located((By.TAG_NAME, "h1")), path)
        width = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width[0] <= width[1], (path, width)
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert [name for name in loaded if not name.startswith(live_url)] == [], path
        assert len(browser.page_source.encode()) < 50 * 1024, path
    assert failures(browser) == []
