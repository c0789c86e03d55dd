"""API clients, categories and template variables are read once per NOTIFY_REFERENCE_TTL seconds
per process (notifications/models.py ProcessCache): a change made in this process counts at
once; one made elsewhere (a queryset update() here stands for another process) within the TTL."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rest_framework.test import APIClient

from notifications.models import ApiClient, Category, Template
from notifications.planning.templating import publish
from notifications.tenancy import grant
from tests.support import send

pytestmark = pytest.mark.django_db

SEND = {"recipients": ["ada"], "category": "orders", "title": "Hi", "channels": ["inapp"]}


@pytest.fixture
def sender(make_user):
    """An app's client with the send scope only, and its API; its one recipient is ada."""
    client, key = ApiClient.issue("Plain app", make_user("plain-owner"), scopes=["send"])
    grant(client, [make_user("ada")])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.api = api
    return client


@pytest.fixture
def app_api(sender):
    return sender.api


def post(api, **body):
    return api.post("/api/notifications/", {**SEND, **body}, format="json")


def test_a_repeated_send_reads_no_client_category_or_template(app_api):
    send(app_api, **SEND)
    with CaptureQueriesContext(connection) as queries:
        send(app_api, **SEND)
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    for table in ("notifications_apiclient", "notifications_category", "notifications_template"):
        assert f'FROM "{table}"' not in sql


def test_a_key_revoked_here_is_refused_at_once(app_api, sender):
    assert post(app_api).status_code == 202
    sender.revoke()
    assert post(app_api).status_code == 401


def test_a_key_revoked_by_another_process_is_refused_within_the_ttl(app_api, sender, settings):
    settings.NOTIFY_REFERENCE_TTL = 0.3
    assert post(app_api).status_code == 202
    ApiClient.objects.filter(pk=sender.pk).update(active=False)  # no signal reaches this process
    time.sleep(0.4)
    assert post(app_api).status_code == 401


def test_an_owner_deactivated_here_shuts_the_key_out_at_once(app_api, sender):
    assert post(app_api).status_code == 202
    sender.owner.is_active = False
    sender.owner.save()
    assert post(app_api).status_code == 401


def test_a_category_made_critical_here_needs_the_critical_scope_at_once(app_api):
    Category.objects.create(key="alerts", name="Alerts")
    assert post(app_api, category="alerts").status_code == 202
    category = Category.objects.get(key="alerts")
    category.critical = True
    category.save()
    assert post(app_api, category="alerts").status_code == 403


def test_a_published_template_asks_for_its_variables_at_once(app_api):
    assert post(app_api, template="receipt").status_code == 400  # no such template yet
    publish("receipt", "inapp", "en", subject="Receipt {{ order }}", body="Order {{ order }}", variables=["order"])
    missing = post(app_api, template="receipt")
    assert missing.status_code == 400 and "order" in str(missing.json())
    assert post(app_api, template="receipt", context={"order": "42"}).status_code == 202
    Template.objects.filter(key="receipt").update(active=False)  # another process retires it...
    assert post(app_api, template="receipt", context={"order": "42"}).status_code == 202  # ...within the TTL
