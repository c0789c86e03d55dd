"""Email: SendGrid first, then SMTP (or the console when neither is configured)."""

from dataclasses import dataclass, field

from django.utils.html import escape, linebreaks

from channels_delivery.channels.email.providers import DjangoEmail, SendGridEmail
from channels_delivery.engine.base import ChannelKit, Message


@dataclass(frozen=True, kw_only=True)
class EmailMessage(Message):
    to: str
    subject: str
    text: str = ""
    html: str = ""
    headers: dict = field(default_factory=dict)  # e.g. List-Unsubscribe, planned with the message
    attachment_ids: list = field(default_factory=list)  # stored once (notifications.models.Attachment)


def address(user):
    return {"to": user.email} if user.email else None


def layout(notification):
    return {
        "subject": notification.title,
        "text": notification.body,
        "html": linebreaks(escape(notification.body)) if notification.body else "",
    }


CHANNEL = ChannelKit(
    name="email", providers=[SendGridEmail(), DjangoEmail()], message=EmailMessage, address=address, layout=layout
)
