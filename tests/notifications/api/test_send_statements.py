"""A send's SQL (notifications/planning/sending.py): one notification without attachments is one
INSERT in autocommit, atomic on its own, with no BEGIN and COMMIT around it; several are stored
in one transaction, so either all of them are or none."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from tests.support import send

pytestmark = pytest.mark.django_db(transaction=True)


def statements_of(api, **body):
    with CaptureQueriesContext(connection) as queries:
        ids = send(api, channels=["inapp"], **body)
    return ids, [query["sql"].split()[0].upper() for query in queries.captured_queries]


def test_one_notification_is_one_insert_without_a_transaction(app_api, make_user):
    make_user("ada")
    send(app_api, recipients=["ada"], channels=["inapp"])  # the key's first use and the process caches
    ids, statements = statements_of(app_api, recipients=["ada"])
    assert statements == ["SELECT", "INSERT"]
    assert Notification.objects.filter(id__in=ids, recipient__username="ada").count() == 1


def test_several_notifications_are_stored_in_one_transaction(app_api, make_user):
    for name in ("ada", "bob", "cy"):
        make_user(name)
    send(app_api, recipients=["ada"], channels=["inapp"])
    ids, statements = statements_of(app_api, recipients=["ada", "bob", "cy"])
    assert statements == ["SELECT", "BEGIN", "INSERT", "COMMIT"]
    assert Notification.objects.filter(id__in=ids).count() == 3
