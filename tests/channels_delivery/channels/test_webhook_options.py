"""Per-endpoint webhook options: method (POST or PUT), content type (JSON or form) and extra headers
(credentials: written once, sent with every request, never shown again), with Standard Webhooks
signing kept on; through the API, the channel, and a real worker."""

import json
import uuid

import pytest

from channels_delivery.engine.errors import TransientDeliveryError
from channels_delivery.channels.webhook.channel import WebhookMessage
from channels_delivery.channels.webhook.providers import SignedWebhook
from notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from tests.support import send, wait_until


SECRET_HEADER = "Bearer tok_" + "9" * 24
EVENT = {"type": "notification.created", "timestamp": "2026-11-22T01:00:00+00:00",
         "data": {"id": "n-1", "title": "Order 123 shipped"}}


@pytest.fixture
def receiver(fakes, channel_settings):
    return fakes["webhook"]


def create(api, receiver, **options):
    url = receiver.endpoint("whsec_placeholder")
    response = api.post("/api/me/webhooks/", {"url": url, **options}, format="json")
    if response.status_code == 201:
        endpoint = WebhookEndpoint.objects.get(id=response.json()["id"])
        receiver.secrets[url.removeprefix(receiver.url)] = endpoint.secret
    return response


@pytest.mark.django_db
def test_put_form_with_extra_headers_reaches_the_receiver_signed(receiver, user_api, make_user):
    user = make_user("wh1")
    created = create(user_api(user), receiver, method="PUT", content_type="form",
                     extra_headers={"Authorization": SECRET_HEADER, "X-Api-Key": "key-123"})
    assert created.status_code == 201
    body = created.json()
    assert body["extra_header_names"] == ["Authorization", "X-Api-Key"] and "extra_headers" not in body
    assert SECRET_HEADER not in created.content.decode()

    delivery_id = uuid.uuid4()
    SignedWebhook().send(delivery_id, WebhookMessage(event=EVENT, endpoint_ids=[body["id"]]))

    [request] = receiver.requests
    assert request.method == "PUT" and request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == SECRET_HEADER and request.headers["x-api-key"] == "key-123"
    [(_path, payload, headers)] = receiver.events  # the signature verified over the form body
    assert payload["type"] == "notification.created" and json.loads(payload["data"]) == EVENT["data"]
    assert headers["webhook-id"] == str(delivery_id)


@pytest.mark.django_db
def test_json_post_stays_the_default(receiver, user_api, make_user):
    body = create(user_api(make_user("wh2")), receiver).json()
    assert body["method"] == "POST" and body["content_type"] == "json" and body["extra_header_names"] == []
    SignedWebhook().send(uuid.uuid4(), WebhookMessage(event=EVENT, endpoint_ids=[body["id"]]))
    [(_path, payload, _headers)] = receiver.events
    assert payload == EVENT


@pytest.mark.django_db
def test_extra_headers_never_override_the_signature_or_framing(receiver, make_user):
    endpoint = WebhookEndpoint.objects.create(user=make_user("wh3"), url="http://placeholder.invalid/")
    endpoint.url = receiver.endpoint(endpoint.secret)
    endpoint.extra_headers = {"webhook-signature": "v1,forged", "Content-Type": "text/plain", "X-Ok": "1"}
    endpoint.save()
    SignedWebhook().send(uuid.uuid4(), WebhookMessage(event=EVENT, endpoint_ids=[endpoint.id]))
    [(_path, _payload, headers)] = receiver.events
    assert headers["x-ok"] == "1" and headers["content-type"] == "application/json"


@pytest.mark.django_db
@pytest.mark.parametrize("options, field", [
    ({"method": "PATCH"}, "method"),
    ({"content_type": "xml"}, "content_type"),
    ({"extra_headers": {"Bad Name": "x"}}, "extra_headers"),
    ({"extra_headers": {"X-Split": "a\r\nInjected: yes"}}, "extra_headers"),
    ({"extra_headers": {"Webhook-Signature": "v1,x"}}, "extra_headers"),
    ({"extra_headers": {f"X-H{n}": "v" for n in range(11)}}, "extra_headers"),
    ({"extra_headers": ["Authorization"]}, "extra_headers"),
])
def test_bad_options_are_400_with_field_errors(receiver, user_api, make_user, options, field):
    response = create(user_api(make_user("wh4")), receiver, **options)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_header_value_is_never_echoed(receiver, user_api, make_user):
    api = user_api(make_user("wh5"))
    body = create(api, receiver, extra_headers={"Authorization": SECRET_HEADER}).json()
    assert SECRET_HEADER not in api.get("/api/me/webhooks/").content.decode()
    receiver.fail_next(status=500, body=SECRET_HEADER.encode())  # a receiver that echoes what it got
    with pytest.raises(TransientDeliveryError) as caught:
        SignedWebhook().send(uuid.uuid4(), WebhookMessage(event=EVENT, endpoint_ids=[body["id"]]))
    assert SECRET_HEADER not in str(caught.value) and "500: [redacted]" in str(caught.value)
    stored = WebhookEndpoint.objects.filter(id=body["id"]).values_list("extra_headers", flat=True).get()
    assert stored == {"Authorization": SECRET_HEADER}


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_end_to_end_the_header_arrives_and_appears_nowhere_else(celery_worker, receiver, app_api, user_api,
                                                                make_user):
    user = make_user("wh6")
    create(user_api(user), receiver, method="PUT", extra_headers={"Authorization": SECRET_HEADER})

    [notification_id] = send(app_api, recipients=["wh6"], channels=["webhook"])

    wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.SENT).exists(),
               timeout=30, message="webhook sent")
    [request] = receiver.requests
    assert request.method == "PUT" and request.headers["authorization"] == SECRET_HEADER
    seen_by_users = [
        app_api.get(f"/api/notifications/{notification_id}/").content.decode(),
        app_api.get(f"/api/notifications/{notification_id}/explain/").content.decode(),
        user_api(user).get("/api/me/webhooks/").content.decode(),
        json.dumps(list(Delivery.objects.filter(notification_id=notification_id).values(
            "message", "provider_payload", "last_error", "reason")), default=str),
    ]
    assert not any(SECRET_HEADER in text for text in seen_by_users)
