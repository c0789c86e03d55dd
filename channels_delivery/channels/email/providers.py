"""Email through SendGrid's v3 API (when a key is set) or Django's email backend (SMTP or console)."""

import base64
import smtplib
import socket
import threading
import urllib.error
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.utils import DNS_NAME
from python_http_client import exceptions as http_exceptions
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Header,
    Mail,
)

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from notifications.models import Attachment as StoredAttachment


class SendGridEmail(Provider):
    name = "sendgrid"
    channel = "email"

    def is_configured(self):
        return bool(settings.SENDGRID_API_KEY)

    local = threading.local()  # each thread's client, made again when its settings change

    def client(self):
        wanted = (settings.SENDGRID_API_KEY, settings.SENDGRID_HOST, settings.PROVIDER_TIMEOUT_SECONDS)
        if getattr(self.local, "settings", None) != wanted:
            client = SendGridAPIClient(api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_HOST)
            client.client.timeout = settings.PROVIDER_TIMEOUT_SECONDS
            self.local.client, self.local.settings = client, wanted
        return self.local.client

    def build(self, delivery_id, message):
        mail = Mail(
            from_email=settings.DEFAULT_FROM_EMAIL,
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.text or None,
            html_content=message.html or None,
        )
        # Our delivery id travels with the message so events and duplicates can be traced to it.
        # It sits in the personalization: Mail Send v3 types a top-level custom_args as a string.
        mail.custom_arg = CustomArg("delivery_id", str(delivery_id), p=0)
        for name, value in message.headers.items():
            mail.header = Header(name, value)
        stored = StoredAttachment.objects.filter(id__in=message.attachment_ids).contents() if message.attachment_ids else []
        for filename, content_type, content in stored:
            mail.attachment = Attachment(FileContent(base64.b64encode(content).decode()), FileName(filename),
                                         FileType(content_type), Disposition("attachment"))
        return mail

    def send(self, delivery_id, message):
        try:
            response = self.client().send(self.build(delivery_id, message))
        except http_exceptions.HTTPError as error:
            raise self.error_for(error.status_code, error.body, error.headers) from error
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as error:
            raise TransientDeliveryError(f"SendGrid unreachable: {error}") from error
        return SendResult(
            provider_message_id=response.headers.get("X-Message-Id", ""), status_code=str(response.status_code)
        )

    @staticmethod
    def error_for(status_code, body, headers):
        text = body.decode(errors="replace")[:500] if isinstance(body, bytes) else str(body)[:500]
        return error_for_status("SendGrid", status_code, text, headers)


class DjangoEmail(Provider):
    """SMTP when EMAIL_HOST is set; otherwise the console backend prints the message.

    Named after the backend that really took the message: a console print is recorded as
    provider `console` with no SMTP reply code, not as an SMTP `250`.
    """

    BACKEND_NAMES = {
        "django.core.mail.backends.console.EmailBackend": "console",
        "django.core.mail.backends.locmem.EmailBackend": "locmem",
        "django.core.mail.backends.filebased.EmailBackend": "file",
    }
    channel = "email"
    local = threading.local()  # each thread's open SMTP connection

    @property
    def name(self):
        return self.BACKEND_NAMES.get(settings.EMAIL_BACKEND, "smtp")

    def is_configured(self):
        # A real SMTP relay backs SendGrid up; with neither, the console shows what would be sent.
        return bool(settings.EMAIL_HOST) or not settings.SENDGRID_API_KEY

    def send(self, delivery_id, message):
        message_id = make_msgid(idstring=str(delivery_id), domain=str(DNS_NAME))
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers={
                **message.headers,  # e.g. List-Unsubscribe, planned with the message
                "X-Notify-Delivery-Id": str(delivery_id),
                "Message-ID": message_id,
            },
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        stored = StoredAttachment.objects.filter(id__in=message.attachment_ids).contents() if message.attachment_ids else []
        for filename, content_type, content in stored:
            email.attach(filename, content, content_type)  # a MIME part, base64 transfer-encoded
        try:
            self.send_reusing_connection(email)
        except (socket.timeout, TimeoutError, ConnectionError, smtplib.SMTPServerDisconnected) as error:
            raise TransientDeliveryError(f"SMTP unreachable: {error}") from error
        except smtplib.SMTPResponseException as error:
            raise self.error_for(error.smtp_code, error.smtp_error) from error
        except smtplib.SMTPRecipientsRefused as error:
            # One recipient per message: its RCPT TO reply decides, 4xx deferred, 5xx refused.
            code, reply = next(iter(error.recipients.values()))
            raise self.error_for(code, reply) from error
        except smtplib.SMTPException as error:
            raise PermanentDeliveryError(f"SMTP: {error}") from error
        return SendResult(provider_message_id=message_id, status_code="250" if self.name == "smtp" else "")

    def send_reusing_connection(self, email):
        """Send over this thread's connection to the SMTP server, kept open for the next mails."""
        email.connection = self.connection()
        try:
            email.connection.open()  # opens it only if it is not open yet
            email.send()
        except Exception:
            self.forget_connection()  # in an unknown state: the next mail starts afresh
            raise

    def connection(self):
        """This thread's connection: made on first use, and again when the mail settings changed
        or the server hung up on it since the last mail (a NOOP asks)."""
        wanted = (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_HOST_USER)
        kept = getattr(self.local, "connection", None)
        if kept is not None and (self.local.settings != wanted or not self.alive(kept)):
            self.forget_connection()
            kept = None
        if kept is None:
            kept = self.local.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
            self.local.settings = wanted
        return kept

    @staticmethod
    def alive(backend):
        smtp = getattr(backend, "connection", None)
        if smtp is None:
            return True  # not open (yet), or a backend without a connection (console, locmem)
        try:
            return smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def forget_connection(self):
        connection, self.local.connection = getattr(self.local, "connection", None), None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a broken connection: nothing left to save
                pass

    @staticmethod
    def error_for(code, reply):
        """The one place SMTP replies are sorted: 4xx is a deferral, anything else a refusal."""
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        error_class = TransientDeliveryError if 400 <= code < 500 else PermanentDeliveryError
        return error_class(f"SMTP {code}: {text[:300]}", status_code=code)
