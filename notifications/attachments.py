"""Email attachments: checked against the caps, stored once, attached to every notification of
the send by reference."""

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .models import Attachment


def store(notifications, files):
    """files: [(filename, content_type, bytes)]. One stored file per distinct content, one row per
    notification and file (rows, not copies of the content)."""
    if not files or not notifications:
        return []
    stored = []
    for filename, content_type, content in files:
        digest = hashlib.sha256(content).hexdigest()
        name = f"attachments/{digest[:2]}/{digest}"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(content))
        stored.append((filename, content_type, len(content), digest, name))
    return Attachment.objects.bulk_create(
        Attachment(notification=notification, filename=filename, content_type=content_type, size=size,
                   sha256=digest, file=name)
        for notification in notifications
        for filename, content_type, size, digest, name in stored
    )


def contents(attachment_ids):
    """[(filename, content_type, bytes)] of the given attachments, in order, read from storage."""
    rows = Attachment.objects.filter(id__in=attachment_ids).order_by("id")
    found = []
    for row in rows:
        with default_storage.open(row.file.name, "rb") as handle:
            found.append((row.filename, row.content_type, handle.read()))
    return found
