"""`/inbox/` in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
a notification POSTed through the API appears without a reload, a click marks it read, the
unread count drops, and another open tab follows. The screenshot lands in test-artifacts/."""

import shutil

import pytest
from rest_framework.test import APIClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as visible
from selenium.webdriver.support.ui import WebDriverWait

from notifications.models import Delivery, DeliveryStatus, Notification
from tests.support.workers import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("chromium and chromium-driver are missing: bin/test installs them (apt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=20):
    return WebDriverWait(driver, timeout).until(condition)


def unread_badge(driver):
    return driver.find_element(By.ID, "unread-count").text


def open_inbox(driver, server, token):
    driver.get(f"{server.url}/inbox/#token={token}")
    wait(driver, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "open")
    # The token left the address bar (and the history) at once.
    assert "token" not in driver.current_url


def test_inbox_page_live_click_to_read_and_other_tabs_follow(
    celery_worker, asgi_server, browser, shop, token_for, make_user
):
    ada = make_user("ada")
    open_inbox(browser, asgi_server, token_for("ada"))
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    open_inbox(browser, asgi_server, token_for("ada"))
    second_tab = browser.current_window_handle
    browser.switch_to.window(first_tab)
    assert unread_badge(browser) == "0"

    app = APIClient()
    app.credentials(HTTP_AUTHORIZATION=f"Bearer {shop.key}")
    response = app.post(
        "/api/notifications/",
        {"recipients": ["ada"], "category": "orders", "title": "Order 123 shipped", "message": "On its way.",
         "channels": ["inapp"]},
        format="json",
    )
    assert response.status_code == 202
    [notification_id] = response.json()["ids"]

    item = wait(browser, visible.visibility_of_element_located((By.ID, f"n-{notification_id}")))
    assert "Order 123 shipped" in item.text and "unread" in item.get_attribute("class")
    wait(browser, lambda d: unread_badge(d) == "1")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "inbox-unread.png"))
    item.click()
    wait(browser, lambda d: "read" == d.find_element(By.ID, f"n-{notification_id}").get_attribute("class").split()[0])
    wait(browser, lambda d: unread_badge(d) == "0")
    browser.save_screenshot(str(ARTIFACTS / "inbox-read.png"))
    assert Notification.objects.get(id=notification_id, recipient=ada).read_at is not None

    browser.switch_to.window(second_tab)
    wait(browser, lambda d: unread_badge(d) == "0")
    assert browser.find_element(By.ID, f"n-{notification_id}").get_attribute("class").startswith("read")
    assert (ARTIFACTS / "inbox-read.png").stat().st_size > 0


def test_inbox_page_reconnects_after_the_server_restarts(worker_env, tmp_path, browser, shop, token_for, make_user):
    from tests.support.workers import AsgiServerProcess

    ada = make_user("ada")
    server = AsgiServerProcess(worker_env, log_dir=tmp_path, name="asgi-restart").start()
    try:
        open_inbox(browser, server, token_for("ada"))
        server.stop()
        wait(browser, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") != "open")
        away = Notification.objects.create(recipient=ada, category_id="orders", title="while you were away")
        Delivery.objects.create(notification=away, channel="inapp", status=DeliveryStatus.SENT)
        server.start()
        wait(browser, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "open", timeout=40)
        # What arrived while it was offline is there without a reload.
        assert "while you were away" in wait(browser, visible.visibility_of_element_located((By.ID, f"n-{away.id}"))).text
        assert unread_badge(browser) == "1"
        # Its waits between attempts: full jitter over 0.5 s doubling, at most 5 s during the first
        # minute offline (a restart: everyone back soon after the server), at most 30 s after it.
        longest = browser.execute_script("""
            var delay = window.inbox.reconnectDelay, longest = {first: 0, minute: 0, later: 0};
            for (var i = 0; i < 5000; i++) {
              longest.first = Math.max(longest.first, delay(0, 0));
              longest.minute = Math.max(longest.minute, delay(12, 59000));
              longest.later = Math.max(longest.later, delay(12, 61000));
            }
            return longest;""")
        assert 400 < longest["first"] <= 500
        assert 4500 < longest["minute"] <= 5000
        assert 27000 < longest["later"] <= 30000
    finally:
        server.stop()
