"""The content part of a message for one channel of one notification.

A template for the notification's key (its template_key, else its category), channel and locale
wins; without one, the literal title and message fill the channel's default layout.
"""

import copy

from django.utils.html import escape, linebreaks

from . import templating, unsubscribe
from .models import Channel


def render_content(notification, channel):
    extra = {}
    headers = unsubscribe.email_headers(notification) if channel == Channel.EMAIL else {}
    if headers:
        extra["unsubscribe_url"] = unsubscribe.url_for(notification.recipient_id, notification.category_id, channel)
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
    if rendered.html and channel == Channel.EMAIL:
        content["html"] = rendered.html
    if rendered.blocks:
        content["blocks"] = rendered.blocks
    content["template"] = {"key": rendered.key, "locale": rendered.locale, "version": rendered.version}
    return content


def default_content(notification, channel):
    if channel == Channel.EMAIL:
        return {
            "subject": notification.title,
            "text": notification.body,
            "html": linebreaks(escape(notification.body)) if notification.body else "",
        }
    return {"title": notification.title, "body": notification.body, "data": notification.data}
