"""A notification's status is derived from its deliveries in one place (settle_notifications)."""

import pytest

from notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    notification_status,
    settle_notifications,
)

D = DeliveryStatus


@pytest.mark.parametrize("rows, expected", [
    ([(0, 0, D.QUEUED)], NotificationStatus.DISPATCHED),
    ([(0, 0, D.SENT)], NotificationStatus.SENT),  # accepted by a provider, not confirmed
    ([(0, 0, D.DELIVERED)], NotificationStatus.DELIVERED),  # confirmed (callback, or the in-app inbox)
    ([(0, 0, D.SENT), (1, 0, D.DELIVERED)], NotificationStatus.DELIVERED),
    ([(0, 0, D.DELIVERED), (1, 0, D.FAILED)], NotificationStatus.PARTIALLY_FAILED),
    ([(0, 0, D.SENT), (1, 0, D.SKIPPED), (2, 0, D.BOUNCED)], NotificationStatus.PARTIALLY_FAILED),
    ([(0, 0, D.FAILED), (0, 1, D.PENDING)], NotificationStatus.DISPATCHED),  # the fallback is on its way
    ([(0, 0, D.FAILED), (0, 1, D.SENT)], NotificationStatus.SENT),  # a fallback reached the user
    ([(0, 0, D.FAILED), (0, 1, D.FAILED)], NotificationStatus.FAILED),
    ([(0, 0, D.SKIPPED), (1, 0, D.SKIPPED)], NotificationStatus.FAILED),
    ([], NotificationStatus.FAILED),
    ([(0, 0, D.SENT), (1, 0, D.RETRYING)], NotificationStatus.SENT),  # one route still trying
])
def test_status_from_deliveries(rows, expected):
    assert notification_status(rows) == expected


@pytest.mark.django_db
def test_settle_writes_derived_statuses_and_leaves_cancelled_ones(make_user):
    ada = make_user("ada")
    sent, cancelled = (
        Notification.objects.create(recipient=ada, category_id="orders", title=title, status=status)
        for title, status in [("a", NotificationStatus.DISPATCHED), ("b", NotificationStatus.CANCELLED)]
    )
    for notification in (sent, cancelled):
        Delivery.objects.create(notification=notification, channel="email", status=D.SENT)

    assert settle_notifications([sent.id, cancelled.id]) == {
        sent.id: NotificationStatus.SENT, cancelled.id: NotificationStatus.SENT,
    }
    assert Notification.objects.get(id=sent.id).status == NotificationStatus.SENT
    assert Notification.objects.get(id=cancelled.id).status == NotificationStatus.CANCELLED


@pytest.mark.django_db
def test_a_delivery_moves_only_from_its_expected_state_and_texts_are_clipped(make_user):
    notification = Notification.objects.create(recipient=make_user("ada"), category_id="orders", title="t")
    delivery = Delivery.objects.create(notification=notification, channel="email", status=D.QUEUED)
    rows = Delivery.objects.filter(id=delivery.id)

    assert rows.move(D.FAILED, source=D.SENDING, reason="x") == 0  # not sending: nothing moves
    assert rows.move(D.FAILED, source=[D.QUEUED, D.RETRYING], reason="r" * 900, last_error="e" * 5000) == 1

    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and len(delivery.reason) == 500 and len(delivery.last_error) == 2000
    assert delivery.updated_at > delivery.created_at
