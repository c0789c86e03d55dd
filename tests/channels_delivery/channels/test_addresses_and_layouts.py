"""Per-channel addresses and default content, and how provider rate-limit headers are read."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from channels_delivery.engine.errors import retry_after_seconds
from notifications.models import Notification, PushSubscription, RecipientProfile, SlackWebhook, WebhookEndpoint
from notifications.planning.planner import address_for
from notifications.planning.rendering import render_content

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_user):
    return make_user("ada")


def notification_for(user, **fields):
    values = {"category_id": "orders", "title": "Order 123 shipped", "body": "It is on its way.",
              "data": {"url": "https://shop.example.com/o/123", "order": 123}, **fields}
    return Notification.objects.create(recipient=user, **values)


@pytest.mark.parametrize("stored, region, expected", [
    ("+49 151 1234 5678", "", {"to": "+4915112345678"}),
    ("(415) 555-2671", "US", {"to": "+14155552671"}),
    ("(415) 555-2671", "", None),  # no country code and no default region
    ("call me", "US", None),
    ("", "US", None),
])
def test_sms_address_is_the_profile_phone_in_e164(user, settings, stored, region, expected):
    settings.SMS_DEFAULT_REGION = region
    RecipientProfile.objects.create(user=user, phone=stored)
    assert address_for(user, "sms") == expected


def test_sms_address_without_a_profile_is_none(user):
    assert address_for(user, "sms") is None


def test_inactive_contact_points_are_left_out(user):
    live = PushSubscription.objects.create(user=user, endpoint="https://push.example.com/a", p256dh="k", auth="a")
    PushSubscription.objects.create(user=user, endpoint="https://push.example.com/b", p256dh="k", auth="a", active=False)
    WebhookEndpoint.objects.create(user=user, url="https://hooks.example.com/x", active=False)
    SlackWebhook.objects.create(user=user, url="https://hooks.slack.com/services/T/B/x", active=False)

    assert address_for(user, "push") == {
        "subscriptions": [{"id": live.id, "endpoint": live.endpoint, "keys": {"p256dh": "k", "auth": "a"}}]}
    assert address_for(user, "webhook") is None
    assert address_for(user, "slack") is None


def test_sms_text_is_short_and_capped(user):
    assert render_content(notification_for(user), "sms") == {"text": "Order 123 shipped: It is on its way."}
    assert render_content(notification_for(user, body=""), "sms") == {"text": "Order 123 shipped"}
    long = render_content(notification_for(user, body="x" * 5000), "sms")["text"]
    assert len(long) == 1600 and long.endswith("…")


def test_push_content(user):
    content = render_content(notification_for(user, priority="urgent"), "push")
    assert content == {"title": "Order 123 shipped", "body": "It is on its way.",
                       "data": {"url": "https://shop.example.com/o/123", "order": 123},
                       "url": "https://shop.example.com/o/123", "priority": "urgent"}


def test_slack_blocks_respect_block_kit_limits(user):
    content = render_content(notification_for(user, title="T" * 400, body=""), "slack")
    header, context = content["blocks"]
    assert len(header["text"]["text"]) == 150
    assert context["type"] == "context"


def test_webhook_event(user):
    notification = notification_for(user)
    event = render_content(notification, "webhook")["event"]
    assert event["type"] == "notification.created"
    assert event["timestamp"] == notification.created_at.isoformat()
    assert event["data"] == {"id": str(notification.id), "recipient": "ada", "category": "orders",
                             "title": "Order 123 shipped", "body": "It is on its way.", "priority": "medium",
                             "data": {"url": "https://shop.example.com/o/123", "order": 123}}


NOW = 1_800_000_000.0


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "30"}, 30.0),
    ({"retry-after": "2.5"}, 2.5),
    ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW, timezone.utc) + timedelta(seconds=90), usegmt=True)}, 90.0),
    ({"X-RateLimit-Reset": str(int(NOW) + 45)}, 45.0),  # a Unix time (SendGrid)
    ({"X-RateLimit-Reset": "12"}, 12.0),  # seconds to wait
    ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0),
    ({"Retry-After": "soon", "X-RateLimit-Reset": "7"}, 7.0),
    ({}, None),
    (None, None),
])
def test_retry_after_seconds(headers, expected):
    assert retry_after_seconds(headers, now=NOW) == expected


def test_prefetched_users_cost_no_queries_per_channel(user, django_assert_num_queries):
    """What each kit names in contact_points is all its address() reads (dispatch prefetches it)."""
    from django.contrib.auth import get_user_model

    from channels_delivery import registry

    RecipientProfile.objects.create(user=user, phone="+14155552671")
    PushSubscription.objects.create(user=user, endpoint="https://push.example.com/a", p256dh="k", auth="a")
    WebhookEndpoint.objects.create(user=user, url="https://hooks.example.com/x")
    SlackWebhook.objects.create(user=user, url="https://hooks.slack.com/services/T/B/x")
    [loaded] = get_user_model().objects.filter(id=user.id).select_related("profile").prefetch_related(
        *(name for channel in registry.NAMES for name in registry.kit(channel).contact_points))

    with django_assert_num_queries(0):
        addresses = {channel: address_for(loaded, channel) for channel in ["email", "sms", "push", "webhook", "slack"]}
    assert all(addresses.values())
