"""The admin as operators use it: lists, filters, search, actions with a reason (audited),
template preview and versions, the dashboard; refused to non-staff."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import (
    AuditEvent,
    Category,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    RecipientProfile,
    Template,
)

from tests.support import chain, in_a_fresh_window

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, make_user):
    user = make_user("ops-anna", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def action(client, url, name, ids, reason=None):
    data = {"action": name, "_selected_action": [str(i) for i in ids]}
    if reason is not None:
        data.update(apply="1", reason=reason)
    return client.post(url, data)


def test_non_staff_are_sent_to_the_login_page(client, make_user):
    client.force_login(make_user("plain-user"))
    for url in ["/admin/notifications/notification/", "/admin/notifications/delivery/", "/admin/dashboard/",
                "/admin/notifications/auditevent/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client.post("/admin/template-preview/", {"body": "x"}).status_code == 302


def test_lists_filter_and_search_by_recipient_email_phone_and_provider_id(client, staff, make_user):
    lin = make_user("lin", email="lin@example.com")
    RecipientProfile.objects.create(user=lin, phone="+14155550100")
    other = make_user("sam", email="sam@example.com")
    _, [lin_email] = chain(lin, ("email", DeliveryStatus.FAILED, {"provider": "sendgrid", "provider_message_id": "sg-77"}))
    chain(other, ("sms", DeliveryStatus.SENT, {"provider": "twilio", "provider_message_id": "SM-1"}))

    deliveries = "/admin/notifications/delivery/"
    page = client.get(deliveries, {"q": "lin@example.com"}).content.decode()
    assert str(lin_email.id) in page and "sam" not in page
    assert str(lin_email.id) in client.get(deliveries, {"q": "+14155550100"}).content.decode()
    assert str(lin_email.id) in client.get(deliveries, {"q": "sg-77"}).content.decode()
    assert "SM-1" not in client.get(deliveries, {"q": "sg-77"}).content.decode()
    assert str(lin_email.id) in client.get(deliveries, {"q": str(lin_email.id)}).content.decode()
    filtered = client.get(deliveries, {"status__exact": "failed", "channel__exact": "email", "provider": "sendgrid",
                                       "created": "24h", "notification__priority__exact": "medium"})
    assert filtered.status_code == 200 and str(lin_email.id) in filtered.content.decode()
    assert str(lin_email.id) not in client.get(deliveries, {"provider": "twilio"}).content.decode()

    notifications = "/admin/notifications/notification/"
    listed = client.get(notifications, {"q": "sam", "channel": "sms", "provider": "twilio", "category__key__exact": "orders",
                                        "priority__exact": "medium", "created": "1h"})
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    assert client.get(notifications, {"q": "not-a-user"}).context["cl"].result_count == 0

    attempts = client.get("/admin/notifications/deliveryattempt/", {"outcome__exact": "sent", "started": "7d"})
    assert attempts.status_code == 200
    change = client.get(f"/admin/notifications/delivery/{lin_email.id}/change/")
    assert change.status_code == 200 and "Delivery attempts" in change.content.decode()


def test_large_lists_show_an_estimate_instead_of_counting_every_row(client, staff, make_user, settings):
    settings.ADMIN_EXACT_COUNT_LIMIT = 3
    user = make_user("many")
    for n in range(6):
        chain(user, ("inapp", DeliveryStatus.SENT), title=f"n{n}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/notifications/notification/")
    assert response.status_code == 200
    paginator = response.context["cl"].paginator
    assert paginator.estimated and paginator.count > 3
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    assert any(q["sql"].startswith("EXPLAIN") for q in queries.captured_queries)

    settings.ADMIN_EXACT_COUNT_LIMIT = 10000
    exact = client.get("/admin/notifications/notification/").context["cl"].paginator
    assert not exact.estimated and exact.count == 6


def test_an_action_asks_for_a_reason_first(client, staff, make_user):
    _, [delivery] = chain(make_user("lin"), ("email", DeliveryStatus.FAILED))
    url = "/admin/notifications/delivery/"
    form = action(client, url, "redrive", [delivery.id])
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    blank = action(client, url, "redrive", [delivery.id], reason="")
    assert "This field is required" in blank.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and not AuditEvent.objects.exists()


def test_redrive_resend_and_cancel_are_done_and_audited_with_the_reason(client, staff, make_user):
    lin = make_user("lin")
    _, [dead] = chain(lin, ("email", DeliveryStatus.FAILED, {"reason": "permanent error: mailbox"}))
    failed_notification, [failed_inapp] = chain(lin, ("inapp", DeliveryStatus.FAILED))
    Notification.objects.filter(id=failed_notification.id).update(status=NotificationStatus.FAILED)
    scheduled = Notification.objects.create(
        recipient=lin, category=Category.objects.get(key="orders"), title="Later",
        status=NotificationStatus.SCHEDULED, scheduled_at=timezone.now() + timezone.timedelta(hours=1),
    )

    response = action(client, "/admin/notifications/delivery/", "redrive", [dead.id], reason="provider fixed")
    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.QUEUED and "provider fixed" in dead.reason

    action(client, "/admin/notifications/notification/", "resend_failed", [failed_notification.id], reason="retry after outage")
    failed_inapp.refresh_from_db()
    assert failed_inapp.status == DeliveryStatus.QUEUED
    assert failed_notification.resends.get().reason == "retry after outage"

    action(client, "/admin/notifications/notification/", "cancel_scheduled", [scheduled.id, failed_notification.id],
           reason="campaign withdrawn")
    scheduled.refresh_from_db()
    assert scheduled.status == NotificationStatus.CANCELLED

    events = {e.action: e for e in AuditEvent.objects.all()}
    assert set(events) == {"delivery.redrive", "notification.resend", "notification.cancel"}
    assert events["delivery.redrive"].reason == "provider fixed"
    assert events["delivery.redrive"].target_id == str(dead.id)
    assert events["notification.cancel"].target_id == str(scheduled.id)  # the dispatched one was refused
    assert all(e.actor == "staff ops-anna" and e.via == "admin" and e.actor_user == staff for e in events.values())
    audit_page = client.get("/admin/notifications/auditevent/", {"action__exact": "delivery.redrive"})
    assert "provider fixed" in audit_page.content.decode()


def test_template_live_preview_for_a_user_and_versions_with_their_author(client, staff, make_user):
    make_user("lin", first_name="Lin")
    preview = client.post("/admin/template-preview/", {
        "key": "orders", "channel": "email", "locale": "en", "subject": "Hi {{ recipient.first_name }}",
        "body": "Order {{ order }} for {{ recipient.username }}", "html_body": "<b>{{ order }}</b>",
        "variables": "order", "user": "lin", "context": '{"order": "A-1 <x>"}', "blocks": "",
    })
    assert preview.status_code == 200, preview.content
    assert preview.json()["subject"] == "Hi Lin"
    assert preview.json()["body"] == "Order A-1 <x> for lin"
    assert preview.json()["html"] == "<b>A-1 &lt;x&gt;</b>"
    refused = client.post("/admin/template-preview/", {"body": "{% load static %}", "user": "nobody", "context": "[]"})
    assert refused.status_code == 400 and set(refused.json()["errors"]) >= {"context"}
    unsafe = client.post("/admin/template-preview/", {"body": "{{ undeclared }}", "context": "{}"})
    assert unsafe.status_code == 400 and "body" in unsafe.json()["errors"]
    unknown_user = client.post("/admin/template-preview/", {"body": "x", "user": "nobody"})
    assert unknown_user.status_code == 400 and "user" in unknown_user.json()["errors"]

    add = client.post("/admin/notifications/template/add/", {
        "key": "orders", "channel": "email", "locale": "en", "subject": "v1", "body": "Body one",
        "html_body": "", "blocks": "[]", "variables": "",
    })
    assert add.status_code == 302, add.content.decode()[:2000]
    first = Template.objects.get(key="orders", version=1)
    edit = client.post(f"/admin/notifications/template/{first.pk}/change/", {
        "key": "orders", "channel": "email", "locale": "en", "subject": "v2", "body": "Body two",
        "html_body": "", "blocks": "[]", "variables": "",
    })
    assert edit.status_code == 302
    second = Template.objects.get(key="orders", version=2)
    assert second.active and second.author == "staff ops-anna"
    page = client.get(f"/admin/notifications/template/{second.pk}/change/").content.decode()
    assert 'id="template-versions"' in page and page.count("staff ops-anna") >= 2 and 'id="template-preview"' in page
    update = AuditEvent.objects.get(action="template.update")
    assert update.before["body"] == "Body one" and update.after["body"] == "Body two"
    client.post(f"/admin/notifications/template/{first.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(action="template.delete", target_id=str(first.pk)).exists()


def test_api_clients_created_and_revoked_in_the_admin_are_audited(client, staff, make_user):
    owner = make_user("shop-app")
    response = client.post("/admin/notifications/apiclient/add/", {
        "name": "Shop", "owner": owner.pk, "scopes": ["send", "read"], "active": "on",
    }, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("nk_" in m for m in shown), shown
    created = AuditEvent.objects.get(action="api_client.create")
    assert created.after["scopes"] == ["send", "read"]
    assert "nk_" not in str(created.after)
    client_id = created.target_id
    action(client, "/admin/notifications/apiclient/", "revoke", [client_id])
    assert AuditEvent.objects.filter(action="api_client.revoke", target_id=client_id).exists()


def test_preference_changes_by_staff_in_the_admin_are_audited(client, staff, make_user):
    lin = make_user("lin")
    response = client.post("/admin/notifications/channelpreference/add/", {
        "user": lin.pk, "category": "", "channel": "sms", "enabled": "",
    })
    assert response.status_code == 302, response.content.decode()[:1500]
    event = AuditEvent.objects.get(action="preferences.change")
    assert event.target_id == str(lin.pk) and event.after["channel"] == "sms" and event.before is None


def test_dashboard_renders_every_section(client, staff, make_user, settings):
    settings.NOTIFY_HEALTH_WORKER_TIMEOUT = 0.2
    _, [row] = chain(make_user("lin"), ("email", DeliveryStatus.FAILED, {"provider": "sendgrid"}))
    page = client.get("/admin/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    for section in ["deliveries-last-hour", "deliveries-last-day", "circuits", "queues", "dead-letters"]:
        assert f'id="{section}"' in html
    figures = page.context["figures"]
    assert figures["dead_letters"] == 1
    assert [r["channel"] for r in figures["last_day"]] == ["email"]
    assert set(figures["circuits"]) >= {"sendgrid", "twilio", "inbox"}
    assert set(figures["queues"]["email"]) == {"urgent", "high", "medium", "low"}
    assert "Dashboard" in client.get("/admin/").content.decode()


@pytest.fixture
def login_failures(settings):
    settings.NOTIFY_THROTTLE_RATES = {**settings.NOTIFY_THROTTLE_RATES, "login_failures": "3/minute"}
    in_a_fresh_window()  # a minute ending between the failures would start the count again
    return settings


def test_failed_admin_logins_lock_the_address_out_even_with_the_right_password(client, make_user, login_failures):
    make_user("ops-ben", password="right-horse-battery", is_staff=True)
    for _ in range(3):
        failed = client.post("/admin/login/", {"username": "ops-ben", "password": "guess"})
        assert failed.status_code == 200 and not failed.wsgi_request.user.is_authenticated
    # The guesser's address is refused before the password is checked, the right one included.
    refused = client.post("/admin/login/", {"username": "ops-ben", "password": "right-horse-battery"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many failed logins" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # The form itself still shows, and another address logs in.
    assert client.get("/admin/login/").status_code == 200
    other = client.post("/admin/login/?next=/admin/", {"username": "ops-ben", "password": "right-horse-battery"},
                        REMOTE_ADDR="10.7.7.7")
    assert other.status_code == 302 and other["Location"] == "/admin/"


def test_a_successful_admin_login_is_not_counted(client, make_user, login_failures):
    make_user("ops-cleo", password="right-horse-battery", is_staff=True)
    for _ in range(4):
        assert client.post("/admin/login/", {"username": "ops-cleo", "password": "right-horse-battery"}).status_code == 302
        client.logout()
    assert client.post("/admin/login/", {"username": "ops-cleo", "password": "right-horse-battery"}).status_code == 302


def test_admin_login_with_the_throttle_store_down_is_a_503_not_a_500(client, make_user, settings):
    settings.CACHES = {**settings.CACHES, "throttle": {**settings.CACHES["throttle"],
                                                       "LOCATION": "redis://127.0.0.1:1/0"}}
    make_user("ops-dan", password="right-horse-battery", is_staff=True)
    response = client.post("/admin/login/", {"username": "ops-dan", "password": "right-horse-battery"})
    assert response.status_code == 503 and int(response["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session
