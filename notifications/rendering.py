"""The content part of a message for one channel of one notification."""

from django.utils.html import escape, linebreaks

from .models import Channel


def render_content(notification, channel):
    if channel == Channel.EMAIL:
        return {
            "subject": notification.title,
            "text": notification.body,
            "html": linebreaks(escape(notification.body)) if notification.body else "",
        }
    return {"title": notification.title, "body": notification.body, "data": notification.data}
