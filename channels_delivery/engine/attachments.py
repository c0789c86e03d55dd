"""Attachments given as URLs, fetched when their notifications are planned (the dispatch task):
through the outbound guard (no private, loopback or link-local targets; no redirects), within the
size cap, each URL once per batch. A failed fetch is kept on its rows (Attachment.fetch_error) and
the email goes out without it."""

import logging

import requests
from django.conf import settings

from channels_delivery.engine.netguard import BlockedAddressError, guarded_session
from notifications.models import Attachment

logger = logging.getLogger(__name__)


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
    """Fetch the URL attachments of these notifications (best prefetched), each URL once."""
    by_url = {}
    for attachment in (a for n in notifications for a in n.attachment_rows() if a.pending):
        by_url.setdefault(attachment.source_url, []).append(attachment)
    for url, rows in by_url.items():
        ids = [row.id for row in rows]
        try:
            content, content_type = fetch(url)
        except FetchFailed as error:
            Attachment.objects.filter(id__in=ids).update(fetch_error=str(error)[:300])
            for row in rows:
                row.fetch_error = str(error)[:300]
            logger.info("attachment %s: %s", url.split("?")[0], error)
            continue
        name, digest = Attachment.objects.store_content(content)
        Attachment.objects.filter(id__in=ids).update(file=name, sha256=digest, size=len(content))
        if content_type:
            Attachment.objects.filter(id__in=ids, content_type="application/octet-stream").update(
                content_type=content_type)
        for row in rows:
            row.file.name, row.sha256, row.size = name, digest, len(content)
