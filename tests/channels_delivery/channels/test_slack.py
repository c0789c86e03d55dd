"""Slack incoming webhooks through the real slack_sdk WebhookClient against the fake Slack."""

import uuid

import pytest

from channels_delivery.channels.slack.channel import SlackMessage
from channels_delivery.channels.slack.providers import SlackIncomingWebhook
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import Notification, SlackWebhook
from notifications.planning.planner import address_for
from notifications.planning.rendering import render_content

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(fakes, channel_settings):
    return fakes["slack"]


@pytest.fixture
def user(make_user):
    return make_user("ada")


@pytest.fixture
def notification(user):
    return Notification.objects.create(
        recipient=user, category_id="orders", title="Order <123> shipped", body="It is on its way & *soon*.",
        priority="high",
    )


def add_webhook(slack, user):
    return SlackWebhook.objects.create(user=user, url=slack.new_webhook(), channel_name="#orders")


def send(user, notification):
    message = {**render_content(notification, "slack"), **address_for(user, "slack")}
    return SlackIncomingWebhook().send(uuid.uuid4(), SlackMessage.from_dict(message))


def test_block_kit_message_reaches_slack(slack, user, notification):
    add_webhook(slack, user)

    send(user, notification)

    [post] = slack.posts()
    # The fallback text is mrkdwn too: escaped, so a title cannot forge <!channel> or links.
    assert post["text"] == "Order &lt;123&gt; shipped\nIt is on its way &amp; *soon*."
    header, section, context = post["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Order <123> shipped"}}
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": "It is on its way &amp; *soon*."}}
    assert context["type"] == "context" and context["elements"][0]["text"] == "*orders* · high"


def test_message_names_webhooks_but_not_their_urls(slack, user):
    webhook = add_webhook(slack, user)
    assert address_for(user, "slack") == {"slack_webhook_ids": [webhook.id]}


@pytest.mark.parametrize("gone, status", [("remove", 404), ("archive", 410)])
def test_removed_or_archived_webhook_is_permanent_and_deactivated(slack, user, notification, gone, status):
    webhook = add_webhook(slack, user)
    getattr(slack, gone)(webhook.url)

    with pytest.raises(PermanentDeliveryError, match=str(status)):
        send(user, notification)

    webhook.refresh_from_db()
    assert webhook.active is False and webhook.deactivated_reason.startswith(f"slack answered {status}")


def test_invalid_payload_is_permanent_but_keeps_the_webhook(slack, user, notification):
    webhook = add_webhook(slack, user)
    slack.fail_next(status=400, body=b"invalid_payload")
    with pytest.raises(PermanentDeliveryError, match="invalid_payload"):
        send(user, notification)
    webhook.refresh_from_db()
    assert webhook.active is True


def test_429_is_transient_with_retry_after(slack, user, notification):
    add_webhook(slack, user)
    slack.fail_next(status=429, headers={"Retry-After": "5"}, body=b"rate_limited")
    with pytest.raises(TransientDeliveryError) as caught:
        send(user, notification)
    assert caught.value.retry_after == 5.0
    assert len(slack.received) == 1  # the SDK's own retry handlers are off: the task retries


@pytest.mark.parametrize("fault", [{"status": 500, "body": b"rollup_error"}, {"timeout": True}, {"drop": True}])
def test_outages_are_transient(slack, user, notification, fault):
    add_webhook(slack, user)
    slack.fail_next(**fault)
    with pytest.raises(TransientDeliveryError):
        send(user, notification)
    assert len(slack.received) == 1


def test_url_outside_slack_hosts_is_refused_without_a_request(slack, user, notification, channel_settings):
    add_webhook(slack, user)
    channel_settings.SLACK_WEBHOOK_HOSTS = ["hooks.slack.com"]
    with pytest.raises(PermanentDeliveryError, match="(?i)not a slack webhook host"):
        send(user, notification)
    assert slack.received == []


def test_one_live_webhook_is_enough(slack, user, notification):
    dead, _alive = add_webhook(slack, user), add_webhook(slack, user)
    slack.remove(dead.url)
    result = send(user, notification)
    assert [target["ok"] for target in result.payload["targets"]] == [False, True]


def test_admin_never_shows_a_slack_webhook_url(slack, user, client, django_user_model):
    webhook = add_webhook(slack, user)
    admin_user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    client.force_login(admin_user)

    listing = client.get("/admin/notifications/slackwebhook/").content.decode()
    change = client.get(f"/admin/notifications/slackwebhook/{webhook.id}/change/").content.decode()

    secret_path = webhook.url.removeprefix(slack.url)
    assert "127.0.0.1" in listing
    assert secret_path not in listing and secret_path not in change

    response = client.post(f"/admin/notifications/slackwebhook/{webhook.id}/change/",
                           {"user": user.id, "url": "", "channel_name": "#ops", "active": "on"})
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.channel_name == "#ops" and webhook.url.endswith(secret_path)
