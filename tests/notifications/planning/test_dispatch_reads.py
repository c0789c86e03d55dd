"""What dispatch reads of a batch beyond its rows (notifications/tasks.py): every notification's
attachments and broadcast, one query each for the whole batch, and nothing more when planning
reads them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Attachment, Category, Notification, NotificationStatus
from notifications.tasks import pending_batch_query, read_attachments_and_broadcasts

pytestmark = pytest.mark.django_db


def test_a_batch_reads_its_attachments_and_broadcasts_once(app_api, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    broadcast_id = app_api.post("/api/notifications/", {"to": {"users": ["ada"]}, "category": "orders",
                                                        "title": "Sale", "data": {"code": "X1"}},
                                format="json").json()["broadcast_id"]
    orders = Category.objects.get(key="orders")
    with_files = Notification.objects.create(recipient=bob, category=orders, title="Invoice",
                                             status=NotificationStatus.PENDING)
    for name in ("b.txt", "a.txt"):  # attachment_rows() gives them in id order, as the ORM's ordering does
        Attachment.objects.create(notification=with_files, filename=name, content_type="text/plain", size=1)
    plain = Notification.objects.create(recipient=ada, category=orders, title="Plain", status=NotificationStatus.PENDING)
    from_broadcast = Notification.objects.create(recipient=ada, category=orders, title="Sale",
                                                 broadcast_id=broadcast_id, status=NotificationStatus.PENDING)
    batch = pending_batch_query.objects(ids=[with_files.id, plain.id, from_broadcast.id])

    with CaptureQueriesContext(connection) as reads:
        read_attachments_and_broadcasts(batch)
    assert len(reads.captured_queries) == 2  # the attachments, the broadcasts
    with CaptureQueriesContext(connection) as later:
        seen = {n.title: ([a.filename for a in n.attachment_rows()], n.broadcast and n.broadcast.payload["data"])
                for n in batch}
    assert later.captured_queries == []
    assert seen == {"Invoice": (["b.txt", "a.txt"], None), "Plain": ([], None), "Sale": ([], {"code": "X1"})}

    with CaptureQueriesContext(connection) as without_broadcasts:
        read_attachments_and_broadcasts([n for n in batch if n.broadcast_id is None])
    assert len(without_broadcasts.captured_queries) == 1
    with CaptureQueriesContext(connection) as empty:
        read_attachments_and_broadcasts([])
    assert empty.captured_queries == []
