"""Slack through the Web API with a bot token per workspace: the real slack_sdk WebClient against
the fake Slack Web API; direct messages (conversations.open + chat.postMessage), channel posts,
permanent and gone answers, and rate limits honoured per workspace and method."""

import uuid

import pytest

from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.channels.slack.bot import SlackBot, paused_for
from channels_delivery.channels.slack.channel import SlackMessage
from channels_delivery.channels.slack.models import SlackBotTarget, SlackWorkspace
from notifications.models import Delivery, DeliveryStatus, SlackWebhook
from tests.support import reset_engine_state, send, wait_until



@pytest.fixture
def slack_api(fakes, channel_settings):
    reset_engine_state()
    yield fakes["slack_api"]
    reset_engine_state()


@pytest.fixture
def workspace(slack_api, db):
    token = slack_api.new_workspace()
    return SlackWorkspace.objects.create(team_id=slack_api.workspaces[token]["team"], name="Acme", bot_token=token)


def target(workspace, user, kind="direct", target_id=None):
    return SlackBotTarget.objects.create(user=user, workspace=workspace, kind=kind, target_id=target_id)


def deliver(*targets):
    message = SlackMessage(text="Order 123 shipped",
                           blocks=[{"type": "header", "text": {"type": "plain_text", "text": "Order 123 shipped"}}],
                           slack_bot_target_ids=[t.id for t in targets])
    return SlackBot().send(uuid.uuid4(), message)


def test_direct_message_opens_the_conversation_then_posts(slack_api, workspace, make_user):
    slack_user = slack_api.add_user(workspace.bot_token)
    dm = target(workspace, make_user("dm1"), target_id=slack_user)

    result = deliver(dm)

    paths = [request.path for request in slack_api.requests]
    assert paths == ["/api/conversations.open", "/api/chat.postMessage"]
    assert all(r.headers["authorization"] == f"Bearer {workspace.bot_token}" for r in slack_api.requests)
    [(team, channel, text, blocks)] = slack_api.posts
    assert team == workspace.team_id and channel.startswith("D") and text == "Order 123 shipped"
    assert blocks[0]["type"] == "header"
    assert result.payload["targets"][0]["channel"] == channel


def test_channel_post_needs_the_bot_in_the_channel(slack_api, workspace, make_user):
    user = make_user("ch1")
    member = target(workspace, user, "channel", slack_api.add_channel(workspace.bot_token))
    outsider = target(workspace, user, "channel", slack_api.add_channel(workspace.bot_token, bot_member=False))

    result = deliver(member, outsider)  # any target reached: sent, each outcome kept

    assert [t["ok"] for t in result.payload["targets"]] == [True, False]
    assert "not_in_channel" in result.payload["targets"][1]["error"]
    with pytest.raises(PermanentDeliveryError, match="not_in_channel"):
        deliver(outsider)
    outsider.refresh_from_db()
    assert outsider.active  # inviting the bot fixes it: the target stays


@pytest.mark.parametrize("state, error", [("deleted", "user_not_found"), ("disabled", "user_disabled")])
def test_a_gone_user_is_permanent_and_switched_off(slack_api, workspace, make_user, state, error):
    gone = target(workspace, make_user("gone"), target_id=slack_api.add_user(workspace.bot_token, state))
    with pytest.raises(PermanentDeliveryError, match=error):
        deliver(gone)
    gone.refresh_from_db()
    assert not gone.active and gone.deactivated_reason == f"slack answered {error}"
    assert slack_api.posts == []


def test_account_inactive_is_permanent(slack_api, workspace, make_user):
    dm = target(workspace, make_user("ai"), target_id=slack_api.add_user(workspace.bot_token))
    slack_api.workspaces[workspace.bot_token]["active"] = False
    with pytest.raises(PermanentDeliveryError, match="account_inactive"):
        deliver(dm)


def test_rate_limit_pauses_only_that_method_of_that_workspace(slack_api, workspace, make_user):
    user = make_user("rl")
    dm = target(workspace, user, target_id=slack_api.add_user(workspace.bot_token))
    slack_api.rate_limit(workspace.bot_token, "chat.postMessage", retry_after=20)

    with pytest.raises(TransientDeliveryError) as caught:
        deliver(dm)
    assert caught.value.status_code == 429 and caught.value.retry_after == 20
    assert 19 < paused_for(workspace.team_id, "chat.postMessage") <= 20
    assert paused_for(workspace.team_id, "conversations.open") == 0
    calls = len(slack_api.received)

    with pytest.raises(TransientDeliveryError, match="rate limited for"):
        deliver(dm)  # not called again while paused: only conversations.open went out
    assert [r.path for r in slack_api.received[calls:]] == ["/api/conversations.open"]

    other = SlackWorkspace.objects.create(team_id="TOTHER", bot_token=slack_api.new_workspace())
    slack_api.workspaces[other.bot_token]["team"] = "TOTHER"
    deliver(target(other, user, target_id=slack_api.add_user(other.bot_token)))  # another workspace is free


@pytest.mark.django_db
def test_targets_api_checks_ids_and_workspace(user_api, make_user, workspace):
    api = user_api(make_user("api1"))
    created = api.post("/api/me/slack-bot-targets/", {"workspace": workspace.team_id, "kind": "direct",
                                                      "target_id": "U0ABC123"}, format="json")
    assert created.status_code == 201
    again = api.post("/api/me/slack-bot-targets/", {"workspace": workspace.team_id, "target_id": "U0ABC123"},
                     format="json")
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    bad = api.post("/api/me/slack-bot-targets/", {"workspace": "TNOPE", "kind": "channel", "target_id": "C1"},
                   format="json")
    assert bad.status_code == 400 and "workspace" in bad.json()["error"]["fields"]
    wrong = api.post("/api/me/slack-bot-targets/", {"workspace": workspace.team_id, "kind": "channel",
                                                    "target_id": "U0ABC123"}, format="json")
    assert wrong.status_code == 400 and "target_id" in wrong.json()["error"]["fields"]
    assert "bot_token" not in str(api.get("/api/me/slack-bot-targets/").json())


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_dm_end_to_end_and_user_not_found_fails_for_good(celery_worker, fakes, app_api, make_user):
    reset_engine_state()
    slack_api = fakes["slack_api"]
    token = slack_api.new_workspace()
    workspace = SlackWorkspace.objects.create(team_id=slack_api.workspaces[token]["team"], bot_token=token)
    target(workspace, make_user("sb1"), target_id=slack_api.add_user(token))
    lost = target(workspace, make_user("sb2"), target_id=slack_api.add_user(token, "deleted"))

    [ok_id, lost_id] = send(app_api, recipients=["sb1", "sb2"], channels=["slack"])

    sent = wait_until(lambda: Delivery.objects.filter(notification_id=ok_id, status=DeliveryStatus.SENT).first(),
                      timeout=30, message="DM sent")
    assert sent.provider == "slack_bot" and len(slack_api.posts) == 1
    failed = wait_until(lambda: Delivery.objects.filter(notification_id=lost_id, status=DeliveryStatus.FAILED).first(),
                        timeout=30, message="user_not_found failed")
    assert failed.attempt_count == 1 and "user_not_found" in failed.reason  # permanent: no retry
    lost.refresh_from_db()
    assert not lost.active
    assert SlackWebhook.objects.count() == 0
    reset_engine_state()
