"""An operator resends a failed email through a real worker once the provider is back."""

import pytest

from notifications.models import Delivery, DeliveryStatus, Resend
from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_resend_after_a_permanent_failure_reaches_sendgrid(celery_worker, sendgrid, app_api, make_user, user_api):
    make_user("31", email="lin@example.com")
    operator = user_api(make_user("operator", is_staff=True))
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Mailbox unavailable"}]}')

    notification_id = app_api.post(
        "/api/notifications/",
        {"recipients": ["31"], "category": "orders", "title": "Invoice", "channels": ["email"]},
        format="json",
    ).json()["ids"][0]
    failed = wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.FAILED).first(),
        message="email failed",
    )
    assert sendgrid.requests == []

    response = operator.post(
        f"/api/notifications/{notification_id}/resend/", {"reason": "mailbox fixed"}, format="json",
        HTTP_IDEMPOTENCY_KEY="resend-1",
    )
    assert response.status_code == 202, response.content
    assert response.json()["queued"] == [str(failed.id)]

    [mail] = sendgrid.wait_for(1)
    assert mail.json()["subject"] == "Invoice"
    sent = wait_until(
        lambda: Delivery.objects.filter(id=failed.id, status=DeliveryStatus.SENT).first(), message="email sent"
    )
    assert [a.outcome for a in sent.attempts.all()] == ["permanent_error", "sent"]
    assert Resend.objects.get().reason == "mailbox fixed"
    # The same key again replays the answer instead of resending.
    again = operator.post(
        f"/api/notifications/{notification_id}/resend/", {"reason": "mailbox fixed"}, format="json",
        HTTP_IDEMPOTENCY_KEY="resend-1",
    )
    assert again.status_code == 202 and again.json() == response.json()
    assert Resend.objects.count() == 1
