"""Email attachments: caps checked by the API (400 over them), each file stored once through
Django's storage and named by id in the email deliveries, sent by SendGrid (its attachments array,
validated against SendGrid's own spec) and by SMTP (MIME parts); end to end through a worker."""

import base64
import hashlib
import uuid
from pathlib import Path

import pytest

from channels_delivery.channels.email.channel import EmailMessage
from channels_delivery.channels.email.providers import DjangoEmail, SendGridEmail
from notifications.models import Attachment, Delivery, DeliveryStatus

from tests.support.contracts import errors, request_body_validator
from tests.support import wait_until

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
CSV = "order,total\n123,9.90\n".encode()


def b64(content):
    return base64.b64encode(content).decode()


def body(recipients, attachments, **extra):
    return {"recipients": recipients, "category": "orders", "title": "Your invoice", "message": "Attached.",
            "channels": ["email"], "attachments": attachments, **extra}


@pytest.fixture
def media(channel_settings):
    return Path(channel_settings.MEDIA_ROOT)


@pytest.mark.django_db
def test_one_stored_file_per_content_shared_by_the_notifications_of_a_send(app_api, make_user, media):
    for name in ("a1", "a2", "a3"):
        make_user(name)
    files = [{"filename": "invoice-123.pdf", "content_type": "application/pdf", "content": b64(PDF)},
             {"filename": "lines.csv", "content_type": "text/csv", "content": b64(CSV)}]

    response = app_api.post("/api/notifications/", body(["a1", "a2", "a3"], files), format="json")

    assert response.status_code == 202, response.content
    rows = Attachment.objects.all()
    assert rows.count() == 6  # 3 notifications x 2 files, as rows
    assert {row.file.name for row in rows} == {f"attachments/{h[:2]}/{h}" for h in
                                               (hashlib.sha256(PDF).hexdigest(), hashlib.sha256(CSV).hexdigest())}
    stored = sorted(p for p in (media / "attachments").rglob("*") if p.is_file())
    assert len(stored) == 2 and {p.read_bytes() for p in stored} == {PDF, CSV}


@pytest.mark.django_db
@pytest.mark.parametrize("attachments, message", [
    ([{"filename": "big.bin", "content": b64(b"x" * 2001)}], "over the 2000 allowed"),
    ([{"filename": f"f{n}.txt", "content": b64(b"x")} for n in range(4)], "At most 3 attachments"),
    ([{"filename": "x.txt", "content": "not base64!"}], "Not base64"),
    ([{"filename": "../etc/passwd", "content": b64(b"x")}], "without slashes"),
    ([{"filename": "x.txt", "content_type": "pdf", "content": b64(b"x")}], "media type"),
    ([{"filename": "x.txt"}], "Give either content or url"),
    ([{"filename": "x.txt", "url": "http://10.1.2.3/x.pdf"}], "not reachable"),
])
def test_over_the_caps_or_malformed_is_400_with_field_errors(app_api, make_user, channel_settings, attachments,
                                                             message):
    channel_settings.NOTIFY_ATTACHMENTS_MAX_COUNT = 3
    channel_settings.NOTIFY_ATTACHMENTS_MAX_BYTES = 2000
    make_user("cap")
    response = app_api.post("/api/notifications/", body(["cap"], attachments), format="json")
    assert response.status_code == 400
    assert message in str(response.json()["error"]["fields"]["attachments"])
    assert Attachment.objects.count() == 0


@pytest.mark.django_db
def test_attachments_are_refused_for_an_audience(app_api, make_user, channel_settings):
    make_user("aud")
    response = app_api.post("/api/notifications/", {**body([], [{"filename": "a.txt", "content": b64(b"a")}]),
                                                    "to": {"users": ["aud"]}}, format="json")
    payload = response.json()["error"]["fields"]
    assert response.status_code == 400 and ("attachments" in payload or "recipients" in payload)


def stored_attachment_ids(make_user, app_api, files):
    make_user("att")
    response = app_api.post("/api/notifications/", body(["att"], files), format="json")
    assert response.status_code == 202, response.content
    return list(Attachment.objects.values_list("id", flat=True))


MESSAGE = {"to": "ada@example.com", "subject": "Your invoice", "text": "Attached.", "html": "<p>Attached.</p>"}


@pytest.mark.django_db
def test_sendgrid_sends_the_attachments_array_as_its_spec_says(sendgrid, channel_settings, make_user, app_api):
    channel_settings.SENDGRID_API_KEY, channel_settings.SENDGRID_HOST = sendgrid.api_key, sendgrid.url
    ids = stored_attachment_ids(make_user, app_api, [
        {"filename": "invoice-123.pdf", "content_type": "application/pdf", "content": b64(PDF)}])

    SendGridEmail().send(uuid.uuid4(), EmailMessage(**MESSAGE, attachment_ids=ids))

    [mail] = sendgrid.mails()
    assert mail["attachments"] == [{"content": b64(PDF), "filename": "invoice-123.pdf", "type": "application/pdf",
                                    "disposition": "attachment"}]
    contract = request_body_validator("sendgrid_mail_v3.json", "/v3/mail/send", "post", "application/json")
    assert errors(contract, mail) == []


@pytest.mark.django_db
def test_smtp_sends_them_as_mime_parts(fakes, channel_settings, make_user, app_api):
    ids = stored_attachment_ids(make_user, app_api, [
        {"filename": "invoice-123.pdf", "content_type": "application/pdf", "content": b64(PDF)},
        {"filename": "lines.csv", "content_type": "text/csv", "content": b64(CSV)}])

    DjangoEmail().send(uuid.uuid4(), EmailMessage(**MESSAGE, attachment_ids=ids))

    [mail] = fakes["smtp"].messages
    assert mail.get_content_type() == "multipart/mixed"
    parts = list(mail.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [("invoice-123.pdf", "application/pdf"),
                                                                        ("lines.csv", "text/csv")]
    assert parts[0].get_content() == PDF
    # a text part travels with CRLF line ends, as SMTP's canonical form has it
    assert parts[1].get_payload(decode=True).replace(b"\r\n", b"\n") == CSV
    assert mail.get_body(("plain",)).get_content().strip() == "Attached."


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_end_to_end_through_a_worker_to_sendgrid(celery_worker, sendgrid, app_api, make_user, channel_settings):
    make_user("e2e-att", email="e2e@example.com")
    files = [{"filename": "invoice-123.pdf", "content_type": "application/pdf", "content": b64(PDF)}]
    response = app_api.post("/api/notifications/", body(["e2e-att"], files), format="json")
    [notification_id] = response.json()["ids"]

    delivery = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id,
                                                          status=DeliveryStatus.SENT).first(), timeout=30)
    assert delivery.message["attachment_ids"] == [Attachment.objects.get().id]
    assert b64(PDF) not in str(delivery.message)  # referenced, never copied into the delivery
    [mail] = sendgrid.mails()
    assert base64.b64decode(mail["attachments"][0]["content"]) == PDF
    contract = request_body_validator("sendgrid_mail_v3.json", "/v3/mail/send", "post", "application/json")
    assert errors(contract, mail) == []


# --- attachments given as URLs: fetched at planning time through the outbound guard --------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_url_attachments_are_fetched_once_when_planned(celery_worker, sendgrid, fakes, app_api, make_user,
                                                       channel_settings):
    files = fakes["files"]
    pdf_url = files.put(PDF, "application/pdf", "invoice.pdf")
    too_big = files.put(b"x" * (channel_settings.NOTIFY_ATTACHMENTS_MAX_BYTES + 1), "application/pdf", "big.pdf")
    for name in ("u1", "u2"):
        make_user(name, email=f"{name}@example.com")
    response = app_api.post("/api/notifications/", body(["u1", "u2"], [
        {"filename": "invoice.pdf", "url": pdf_url}, {"filename": "big.pdf", "url": too_big}]), format="json")
    assert response.status_code == 202, response.content
    ids = response.json()["ids"]

    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.SENT).count() == 2,
               timeout=30, message="both emails sent")
    mails = sendgrid.mails()
    assert [[(a["filename"], a["type"]) for a in mail["attachments"]] for mail in mails] == \
        [[("invoice.pdf", "application/pdf")]] * 2  # the oversize one left out
    assert all(base64.b64decode(mail["attachments"][0]["content"]) == PDF for mail in mails)
    fetched = [r.path for r in files.requests]
    assert fetched.count(pdf_url.removeprefix(files.url)) <= 2  # once per dispatch batch, not per email
    big_rows = Attachment.objects.filter(filename="big.pdf")
    assert {row.fetch_error for row in big_rows} == {f"larger than {channel_settings.NOTIFY_ATTACHMENTS_MAX_BYTES} bytes"}


@pytest.mark.django_db
def test_fetching_goes_through_the_outbound_guard(fakes, channel_settings):
    from channels_delivery.engine.attachments import FetchFailed, fetch

    url = fakes["files"].put(b"secret internal file")
    channel_settings.WEBHOOK_ALLOWED_HOSTS = []  # loopback is private again
    with pytest.raises(FetchFailed, match="refused"):
        fetch(url)
    assert fakes["files"].received == []
