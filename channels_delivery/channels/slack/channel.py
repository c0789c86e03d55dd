"""Slack incoming webhooks and the Slack bot (Web API, a token per workspace) side by side,
formatted with Block Kit. The message names webhook and bot-target ids: webhook URLs and bot
tokens are credentials, read from their rows at send time."""

from dataclasses import dataclass, field

from channels_delivery.channels.slack.bot import SlackBot
from channels_delivery.channels.slack.providers import SlackIncomingWebhook
from channels_delivery.engine.base import ChannelKit, Message
from notifications.models import active_contact_points
from notifications.planning.text import clip, slack_escape

SLACK_HEADER_MAX = 150  # Block Kit limits
SLACK_SECTION_MAX = 3000


@dataclass(frozen=True, kw_only=True)
class SlackMessage(Message):
    slack_webhook_ids: list = field(default_factory=list)
    slack_bot_target_ids: list = field(default_factory=list)
    text: str
    blocks: list = field(default_factory=list)


def address(user):
    found = {}
    ids = [webhook.id for webhook in active_contact_points(user.slack_webhooks)]
    if ids:
        found["slack_webhook_ids"] = ids
    bot_ids = [target.id for target in active_contact_points(user.slack_bot_targets)]
    if bot_ids:
        found["slack_bot_target_ids"] = bot_ids
    return found or None


def layout(notification):
    text = f"{notification.title}\n{notification.body}" if notification.body else notification.title
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": clip(notification.title, SLACK_HEADER_MAX)}}]
    if notification.body:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(slack_escape(notification.body), SLACK_SECTION_MAX)}}
        )
    created = notification.created_at
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"*{slack_escape(notification.category_id)}* · {notification.priority}"},
                {"type": "mrkdwn", "text": f"<!date^{int(created.timestamp())}^{{date_short_pretty}} {{time}}|{created:%Y-%m-%d %H:%M} UTC>"},
            ],
        }
    )
    # The fallback text (notifications, clients without blocks) is mrkdwn too: `<!channel>` in a
    # title must arrive as text, not as a mention.
    return {"text": clip(slack_escape(text), SLACK_SECTION_MAX), "blocks": blocks}


CHANNEL = ChannelKit(
    name="slack", providers=[SlackIncomingWebhook(), SlackBot()], message=SlackMessage, address=address,
    layout=layout, side_by_side=True, contact_points=("slack_webhooks", "slack_bot_targets"),
)
