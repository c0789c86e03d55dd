"""The content part of a message for one channel of one notification.

A template for the notification's key (its template_key, else its category), channel and locale
wins; without one, the literal title and message fill the channel's default layout.
"""

import copy

from django.utils.html import escape, linebreaks

from . import templating, unsubscribe
from .models import Channel

SMS_MAX_CHARS = 1600  # Twilio refuses longer bodies
SLACK_HEADER_MAX = 150  # Block Kit limits
SLACK_SECTION_MAX = 3000


def clip(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(text):
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_content(notification):
    return {
        "subject": notification.title,
        "text": notification.body,
        "html": linebreaks(escape(notification.body)) if notification.body else "",
    }


def sms_content(notification):
    text = f"{notification.title}: {notification.body}" if notification.body else notification.title
    return {"text": clip(text, SMS_MAX_CHARS)}


def push_content(notification):
    return {
        "title": notification.title,
        "body": notification.body,
        "data": notification.payload_data,
        "url": str(notification.payload_data.get("url", "")) if isinstance(notification.payload_data, dict) else "",
        "priority": notification.priority,
    }


def slack_content(notification):
    text = f"{notification.title}\n{notification.body}" if notification.body else notification.title
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": clip(notification.title, SLACK_HEADER_MAX)}}]
    if notification.body:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(slack_escape(notification.body), SLACK_SECTION_MAX)}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"*{slack_escape(notification.category_id)}* · {notification.priority}"},
                {"type": "mrkdwn", "text": f"<!date^{int(notification.created_at.timestamp())}^{{date_short_pretty}} {{time}}|{notification.created_at:%Y-%m-%d %H:%M} UTC>"},
            ],
        }
    )
    return {"text": clip(text, SLACK_SECTION_MAX), "blocks": blocks}


def webhook_content(notification):
    """A Standard Webhooks event: type, timestamp and data."""
    return {
        "event": {
            "type": "notification.created",
            "timestamp": notification.created_at.isoformat(),
            "data": {
                "id": str(notification.id),
                "recipient": notification.recipient.get_username(),
                "category": notification.category_id,
                "title": notification.title,
                "body": notification.body,
                "priority": notification.priority,
                "data": notification.payload_data,
            },
        }
    }


def generic_content(notification):
    return {"title": notification.title, "body": notification.body, "data": notification.payload_data}


RENDERERS = {
    Channel.EMAIL: email_content,
    Channel.SMS: sms_content,
    Channel.PUSH: push_content,
    Channel.SLACK: slack_content,
    Channel.WEBHOOK: webhook_content,
}


def render_content(notification, channel):
    extra = {}
    headers = unsubscribe.email_headers(notification) if channel == Channel.EMAIL else {}
    if headers:
        # The same signed link as the header (signing again later would stamp another second).
        extra["unsubscribe_url"] = headers["List-Unsubscribe"].strip("<>")
    rendered = templating.render_for(notification, channel, extra)
    if rendered is None:
        content = default_content(notification, channel)
    else:
        content = with_template(notification, channel, rendered)
    if headers:
        content["headers"] = {**content.get("headers", {}), **headers}
    return content


def with_template(notification, channel, rendered):
    """The channel's default layout around the template's text, plus its HTML and blocks."""
    shown = copy.copy(notification)
    shown.title, shown.body = rendered.subject or notification.title, rendered.body
    content = default_content(shown, channel)
    if channel == Channel.SMS:
        content["text"] = clip(rendered.body.strip(), SMS_MAX_CHARS)  # an SMS template is the whole text
    if rendered.html and channel == Channel.EMAIL:
        content["html"] = rendered.html
    if rendered.blocks:
        content["blocks"] = rendered.blocks
    content["template"] = {"key": rendered.key, "locale": rendered.locale, "version": rendered.version}
    return content


def default_content(notification, channel):
    return RENDERERS.get(channel, generic_content)(notification)
