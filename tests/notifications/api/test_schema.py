"""The OpenAPI schema is the contract: schemathesis drives every operation in-process (WSGI) as an
end user, as an app's API key and as an operator, and finds no 5xx and no answer outside the
schema. Plus the error format on Django's own error paths."""

import collections
import functools
import itertools
import json
import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from schemathesis.core import NOT_SET
from schemathesis.generation.meta import TestPhase

from config.wsgi import application
from notifications.models import ApiClient, Notification
from notifications.tenancy import grant

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def served_schema():
    """The document /api/schema/ serves (generated here: collection may not touch the database)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(served_schema())
schema.app = application


# Every operation is driven as each kind of caller: an app's send-only, read-only and admin keys,
# an end user and a staff operator. Whoever it is, the answer keeps to the schema (a 403 is
# documented; a 500 or an undocumented status is a failure).
CALLERS = ("send_key", "read_key", "admin_key", "user", "staff")


@pytest.fixture
def in_process_requests(db):
    # As Django's test client does: a request must not close the test transaction's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def callers(db, django_user_model, settings, test_app_clients):
    from django.contrib.auth.models import Permission

    settings.NOTIFY_THROTTLE_RATES = {scope: "" for scope in settings.NOTIFY_THROTTLE_RATES}  # throttling off
    manage_clients = Permission.objects.filter(codename__in=["add_apiclient", "change_apiclient"])
    user = django_user_model.objects.create_user("reader", email="reader@example.com")
    staff = django_user_model.objects.create_user("operator", email="op@example.com", is_staff=True)
    staff.user_permissions.add(*manage_clients)
    Notification.objects.create(recipient=user, category_id="orders", title="Hello")
    app_owner = django_user_model.objects.create_user("fuzz-app")
    ops_owner = django_user_model.objects.create_user("fuzz-ops")
    ops_owner.user_permissions.add(*manage_clients)
    clients = {
        "send_key": ApiClient.issue("Sender", app_owner, scopes=["send"]),
        "read_key": ApiClient.issue("Reader", app_owner, scopes=["read"]),
        "admin_key": ApiClient.issue("Ops", ops_owner, scopes=["admin"]),
        "app": ApiClient.issue("Fuzzer", app_owner, scopes=["send", "read"]),
    }
    keys = {name: key for name, (_client, key) in clients.items()}
    for client, _key in clients.values():
        grant(client, [user])  # the apps' recipient, as are the users the tests make
        test_app_clients.append(client)
    return {
        **{name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()},
        "user": {"Authorization": f"Token {Token.objects.create(user=user).key}"},
        "staff": {"Authorization": f"Token {Token.objects.create(user=staff).key}"},
        "operator": {"Authorization": f"Token {Token.objects.get(user=staff).key}"},
    }


@schema.parametrize()
@hypothesis_settings(
    max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_every_operation_keeps_to_the_schema_for_every_caller(case, callers, in_process_requests):
    drive = [name for name in CALLERS if (case.operation.label, name) not in REFUSED]
    if drive and not EVERY_CALLER and case.meta is not None and (
        case.meta.phase.name == TestPhase.COVERAGE or case.meta.generation.mode.is_negative
    ):
        # The coverage phase's thousands of boundary inputs, and every input the schema forbids:
        # one permitted caller each, in turn, so every caller meets a share of them. The fuzzing
        # phase's inputs go to every caller.
        drive = [drive[next(TURNS[case.operation.label]) % len(drive)]]
    for name in drive:
        response = case.call_and_validate(headers=callers[name], checks=CHECKS)
        if response.status_code == 403 and response.json()["error"]["message"] in permission_class_messages():
            REFUSED.add((case.operation.label, name))


# (operation, caller) pairs a permission class has refused. Such a refusal is decided by the
# method, the route and the caller, before the request's input is read: once shown (and checked
# against the schema), the coverage phase's hundreds of bodies would only repeat it. A 403 that
# depends on the input (a broadcast or critical send without the scope) is not remembered.
REFUSED = set()
TURNS = collections.defaultdict(itertools.count)
# The whole matrix instead, every input as every caller (about 4 minutes more here):
# SCHEMA_EVERY_CALLER=1 bin/test tests/notifications/api/test_schema.py
EVERY_CALLER = os.environ.get("SCHEMA_EVERY_CALLER") == "1"


@functools.cache  # first called after a request: every permission class is imported by then
def permission_class_messages():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return {str(PermissionDenied.default_detail)} | {
        str(cls.message) for cls in subclasses(BasePermission) if isinstance(getattr(cls, "message", None), str)
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_stateful_links_keep_to_the_schema(caller, callers, in_process_requests):
    """Sequences that follow the schema's links (an id created by one call used by the next)."""
    from schemathesis.generation.stateful import run_state_machine_as_test

    headers = callers[caller]

    class Scenario(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    run_state_machine_as_test(Scenario, settings=hypothesis_settings(
        max_examples=8, stateful_step_count=5, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), derandomize=True,
    ))


def test_real_objects_answer_within_the_schema(callers, in_process_requests, make_user):
    """Random ids mostly meet 404s: this walks the success answers with real objects."""

    def call(caller, method, path, status, body=None, **parameters):
        case = schema[path][method].Case(
            path_parameters=parameters or None, body=body if body else NOT_SET,
            media_type="application/json" if body else None,
        )
        response = case.call_and_validate(headers=callers[caller], checks=CHECKS)
        assert response.status_code == status, (method, path, response.text)
        return response.json() if response.content else None

    make_user("42")
    sent = call("app", "POST", "/api/notifications/", 202,
                {"recipients": ["reader"], "category": "orders", "title": "Hi", "data": {"n": 1}})
    [notification_id] = sent["ids"]
    assert call("user", "GET", "/api/notifications/", 200)["total"] == 2
    call("app", "GET", "/api/notifications/{id}/", 200, id=notification_id)
    for mark in ("read", "seen", "archived"):
        call("user", "PUT", f"/api/notifications/{{id}}/{mark}/", 200, id=notification_id)
        call("user", "DELETE", f"/api/notifications/{{id}}/{mark}/", 200, id=notification_id)
    call("user", "GET", "/api/notifications/unread-count/", 200)
    call("user", "POST", "/api/notifications/read-all/", 200)
    call("app", "POST", "/api/notifications/{id}/cancel/", 200, id=notification_id)
    call("operator", "POST", "/api/notifications/{id}/resend/", 409, {"reason": "x"}, id=notification_id)
    broadcast = call("app", "POST", "/api/notifications/", 202,
                     {"to": {"users": ["42"], "all": False}, "category": "orders", "title": "Hi"})
    call("app", "GET", "/api/broadcasts/{id}/", 200, id=broadcast["broadcast_id"])
    call("app", "GET", "/api/broadcasts/", 200)

    call("user", "PUT", "/api/me/profile/", 200, {"phone": "+14155550123", "timezone": "America/New_York"})
    call("user", "POST", "/api/me/push-subscriptions/", 201, {
        "endpoint": "https://push.example.com/x", "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22}})
    call("user", "GET", "/api/me/push-subscriptions/", 200)
    webhook = call("user", "POST", "/api/me/webhooks/", 201, {"url": "https://hooks.example.com/in"})
    call("user", "DELETE", "/api/me/webhooks/{id}/", 204, id=webhook["id"])
    call("user", "POST", "/api/me/slack-webhooks/", 201, {"url": "https://hooks.slack.com/services/T/B/X"})
    call("user", "GET", "/api/me/slack-webhooks/", 200)
    call("app", "PUT", "/api/recipients/{id}/", 201, {"email": "n@example.com", "groups": ["vip"]}, id="newbie")
    call("app", "GET", "/api/recipients/{id}/", 200, id="newbie")

    client = call("operator", "POST", "/api/clients/", 201, {"name": "CRM", "scopes": ["send"]})
    call("operator", "GET", "/api/clients/{id}/", 200, id=client["id"])
    call("operator", "POST", "/api/clients/{id}/revoke/", 200, id=client["id"])
    call("operator", "GET", "/api/deliveries/", 200)
    call("operator", "GET", "/api/analytics/summary/", 200)


# --- Django's own error paths answer in the one format -------------------------------------

@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404(app_api):
    response = app_api.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


@pytest.mark.django_db
def test_malformed_id_is_a_json_404(app_api):
    response = app_api.get("/api/notifications/not-a-uuid/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_server_error_is_json_on_api_paths(rf):
    from notifications.api.errors import server_error

    response = server_error(rf.get("/api/notifications/"))
    assert response.status_code == 500 and b'"server_error"' in response.content
    assert server_error(rf.get("/admin/")).status_code == 500


@pytest.mark.django_db
def test_ten_megabyte_body_is_a_413(app_api, make_user):
    make_user("42")
    body = '{"recipients": ["42"], "category": "orders", "title": "' + "x" * (10 * 1024 * 1024) + '"}'
    response = app_api.post("/api/notifications/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == {"status": 413, "code": "too_large", "message": "Request body is too large."}
    assert Notification.objects.count() == 0


def test_django_bad_request_handler_speaks_the_format_on_api_paths(rf):
    from django.core.exceptions import RequestDataTooBig, SuspiciousOperation

    from notifications.api.errors import bad_request

    too_big = bad_request(rf.post("/api/notifications/"), RequestDataTooBig("too big"))
    assert too_big.status_code == 413 and b'"too_large"' in too_big.content
    bad = bad_request(rf.get("/api/notifications/"), SuspiciousOperation("bad host"))
    assert bad.status_code == 400 and b'"bad_request"' in bad.content


@pytest.mark.django_db
def test_schema_and_docs_are_served_to_operators(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert json.loads(served.content) == served_schema()
    assert client.get("/api/docs/").status_code == 200
