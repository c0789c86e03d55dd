"""Email attachments of a send: stored once, attached to every notification of it by reference.
Those given as URLs are fetched when the notifications are planned (engine/attachments.py)."""

from notifications.models import Attachment


def store(notifications, files):
    """files: [(filename, content_type, bytes or None, url)]. One stored file per distinct
    content, one row per notification and file (rows, not copies of the content)."""
    if not files or not notifications:
        return []
    rows = []
    for filename, content_type, content, url in files:
        if content is not None:
            name, digest = Attachment.objects.store_content(content)
            rows.append(dict(filename=filename, content_type=content_type, size=len(content), sha256=digest,
                             file=name))
        else:
            rows.append(dict(filename=filename, content_type=content_type, size=0, source_url=url))
    return Attachment.objects.bulk_create(
        Attachment(notification=notification, **row) for notification in notifications for row in rows
    )

