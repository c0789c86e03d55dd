"""Email attachments: stored once, attached to every notification of the send by reference.

An attachment given as a URL is fetched when its notifications are planned (dispatch), through the
outbound guard (no private, loopback or link-local targets; no redirects), within the size cap.
"""

import hashlib
import logging

import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from channels_delivery.netguard import BlockedAddressError, guarded_session

from .models import Attachment

logger = logging.getLogger(__name__)


def save_content(content):
    """Store bytes once under their SHA-256; (storage name, digest)."""
    digest = hashlib.sha256(content).hexdigest()
    name = f"attachments/{digest[:2]}/{digest}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(content))
    return name, digest


def store(notifications, files):
    """files: [(filename, content_type, bytes or None, url)]. One stored file per distinct
    content, one row per notification and file (rows, not copies of the content)."""
    if not files or not notifications:
        return []
    rows = []
    for filename, content_type, content, url in files:
        if content is not None:
            name, digest = save_content(content)
            rows.append(dict(filename=filename, content_type=content_type, size=len(content), sha256=digest,
                             file=name))
        else:
            rows.append(dict(filename=filename, content_type=content_type, size=0, source_url=url))
    return Attachment.objects.bulk_create(
        Attachment(notification=notification, **row) for notification in notifications for row in rows
    )


class FetchFailed(Exception):
    pass


def fetch(url):
    """The body at `url` through the outbound guard, refused past the size cap."""
    limit = settings.NOTIFY_ATTACHMENTS_MAX_BYTES
    try:
        response = guarded_session().get(url, timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
                                          allow_redirects=False, stream=True)
        if response.status_code != 200:
            raise FetchFailed(f"answered {response.status_code}")
        content = bytearray()
        for chunk in response.iter_content(64 * 1024):
            content += chunk
            if len(content) > limit:
                response.close()
                raise FetchFailed(f"larger than {limit} bytes")
        return bytes(content), response.headers.get("Content-Type", "").split(";")[0].strip()
    except BlockedAddressError as error:
        raise FetchFailed(f"refused: {error}") from error
    except requests.RequestException as error:
        raise FetchFailed(f"unreachable ({type(error).__name__})") from error


def fetch_pending(notifications):
    """Fetch the URL attachments of these notifications, each URL once; a failure is kept on its
    rows (Attachment.fetch_error), and the email goes out without it."""
    pending = [a for n in notifications for a in n.attachments.all() if a.pending]
    by_url = {}
    for attachment in pending:
        by_url.setdefault(attachment.source_url, []).append(attachment)
    for url, rows in by_url.items():
        try:
            content, content_type = fetch(url)
        except FetchFailed as error:
            Attachment.objects.filter(id__in=[row.id for row in rows]).update(fetch_error=str(error)[:300])
            for row in rows:
                row.fetch_error = str(error)[:300]
            logger.info("attachment %s: %s", url.split("?")[0], error)
            continue
        name, digest = save_content(content)
        changes = {"file": name, "sha256": digest, "size": len(content)}
        Attachment.objects.filter(id__in=[row.id for row in rows]).update(**changes)
        for row in rows:
            row.file.name, row.sha256, row.size = name, digest, len(content)
            if row.content_type == "application/octet-stream" and content_type:
                row.content_type = content_type
                Attachment.objects.filter(id=row.id).update(content_type=content_type)


def contents(attachment_ids):
    """[(filename, content_type, bytes)] of the given attachments that hold a file, in order."""
    rows = Attachment.objects.filter(id__in=attachment_ids).exclude(file="").order_by("id")
    found = []
    for row in rows:
        with default_storage.open(row.file.name, "rb") as handle:
            found.append((row.filename, row.content_type, handle.read()))
    return found
