"""The content part of a message for one channel of one notification.

A template for the notification's key (its template_key, else its category), channel and locale
wins; without one, the literal title and message fill the channel's default layout (its kit's
layout(), in channels_delivery/channels/<name>/channel.py).
"""

import copy

from channels_delivery import registry
from notifications.models import Channel
from notifications.planning import templating, unsubscribe


def render_content(notification, channel):
    extra = {}
    headers = unsubscribe.email_headers(notification) if channel == Channel.EMAIL else {}
    if headers:
        # The same signed link as the header (signing again later would stamp another second).
        extra["unsubscribe_url"] = headers["List-Unsubscribe"].strip("<>")
    rendered = templating.render_for(notification, channel, extra)
    kit = registry.kit(channel)
    if rendered is None:
        content = kit.layout(notification)
    else:
        content = with_template(notification, kit, rendered)
    if headers:
        content["headers"] = {**content.get("headers", {}), **headers}
    return content


def with_template(notification, kit, rendered):
    """The channel's default layout around the template's text, plus its HTML and blocks."""
    shown = copy.copy(notification)
    shown.title, shown.body = rendered.subject or notification.title, rendered.body
    content = kit.layout(shown)
    if kit.template_layout is not None:
        content.update(kit.template_layout(rendered))
    if rendered.html and kit.message.accepts("html"):
        content["html"] = rendered.html
    if rendered.blocks and kit.message.accepts("blocks"):
        content["blocks"] = rendered.blocks
    content["template"] = {"key": rendered.key, "locale": rendered.locale, "version": rendered.version}
    return content
