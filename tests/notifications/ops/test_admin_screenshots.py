"""Headless Chromium drives the admin like an operator: logs in, opens the dashboard and the
delivery list, checks what renders, and saves screenshots under test-artifacts/screenshots/
(git-ignored). bin/test installs Debian's chromium and chromium-driver when they are missing."""

import shutil
from pathlib import Path

import pytest

from notifications.models import DeliveryStatus

from tests.support import chain, reset_engine_state

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium/chromedriver missing (bin/test installs them)"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def operator_session(browser, live_server, django_user_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    django_user_model.objects.create_user("ops-olga", password="a-long-test-password", is_staff=True,
                                          is_superuser=True)
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("ops-olga")
    browser.find_element(By.NAME, "password").send_keys("a-long-test-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click navigates; on a busy machine the index may take a moment to arrive.
    WebDriverWait(browser, 30).until(lambda driver: "Site administration" in driver.page_source)
    return browser


def some_traffic(make_user):
    from django.utils import timezone

    now = timezone.now()
    lin, sam = make_user("lin", email="lin@example.com"), make_user("sam", email="sam@example.com")
    chain(lin, ("email", DeliveryStatus.SENT, {"provider": "sendgrid", "provider_message_id": "sg-1", "sent_at": now}))
    chain(lin, ("email", DeliveryStatus.FAILED, {"provider": "sendgrid", "reason": "permanent error: bounced"}),)
    chain(sam, ("sms", DeliveryStatus.SENT, {"provider": "twilio", "provider_message_id": "SM-9", "sent_at": now}))
    chain(sam, ("inapp", DeliveryStatus.QUEUED))


def test_dashboard_and_delivery_list_render_for_an_operator(operator_session, live_server, make_user, settings):
    from selenium.webdriver.common.by import By

    settings.NOTIFY_HEALTH_WORKER_TIMEOUT = 0.3
    reset_engine_state()
    some_traffic(make_user)
    browser = operator_session
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    browser.get(f"{live_server.url}/admin/dashboard/")
    for section in ("deliveries-last-hour", "deliveries-last-day", "circuits", "queues", "dead-letters"):
        assert browser.find_element(By.ID, section).is_displayed()
    hour = browser.find_element(By.ID, "deliveries-last-hour").text
    assert "sendgrid" in hour and "twilio" in hour
    assert browser.find_element(By.ID, "dead-letter-count").text == "1"
    queue_rows = browser.find_elements(By.CSS_SELECTOR, "#queues tr.queue-row")
    assert {row.get_attribute("data-queue") for row in queue_rows} >= {"dispatch", "email", "sms", "inapp"}
    assert "closed" in browser.find_element(By.ID, "circuits").text
    browser.save_screenshot(str(ARTIFACTS / "admin-dashboard.png"))

    browser.get(f"{live_server.url}/admin/notifications/delivery/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 4
    filters = browser.find_element(By.ID, "changelist-filter").text
    for title in ("By status", "By channel", "By provider", "By created"):
        assert title in filters
    assert browser.find_element(By.ID, "searchbar").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "admin-delivery-list.png"))

    browser.get(f"{live_server.url}/admin/notifications/delivery/?status__exact=failed")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 1
    for name in ("admin-dashboard.png", "admin-delivery-list.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
