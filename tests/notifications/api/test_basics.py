import pytest
from rest_framework.test import APIClient

from notifications.models import Notification

pytestmark = pytest.mark.django_db

SEND = "/api/notifications/"


def send(api, **overrides):
    body = {"recipients": ["42"], "category": "orders", "title": "Shipped", "message": "On its way"}
    body.update(overrides)
    return api.post(SEND, body, format="json")


@pytest.fixture
def recipient(make_user):
    return make_user("42")


def test_send_answers_202_with_ids(app_api, recipient):
    response = send(app_api)
    assert response.status_code == 202
    [notification_id] = response.json()["ids"]
    notification = Notification.objects.get(id=notification_id)
    assert notification.recipient == recipient and notification.status == "pending"


def test_unknown_recipient_is_a_field_error(app_api, recipient):
    response = send(app_api, recipients=["42", "nobody"])
    assert response.status_code == 400
    error = response.json()["error"]
    assert "nobody" in error["fields"]["recipients"][0]
    assert Notification.objects.count() == 0


def test_empty_title_is_a_field_error(app_api, recipient):
    response = send(app_api, title="")
    assert response.status_code == 400
    assert "title" in response.json()["error"]["fields"]


def test_unknown_channel_is_a_field_error(app_api, recipient):
    response = send(app_api, channels=["email", "carrier-pigeon"])
    assert response.status_code == 400
    assert "channels" in response.json()["error"]["fields"]


def test_unknown_category_is_a_field_error(app_api, recipient):
    response = send(app_api, category="nope")
    assert response.status_code == 400
    assert "category" in response.json()["error"]["fields"]


def test_malformed_json_is_a_400(app_api, recipient):
    response = app_api.post(SEND, data='{"recipients": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_wrong_types_are_field_errors(app_api, recipient):
    response = send(app_api, recipients="42", data=[1, 2], priority="whenever")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"recipients", "data", "priority"}


def test_unauthenticated_is_a_401():
    response = APIClient().get(SEND)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_bad_api_key_is_a_401(recipient):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nk_deadbeef.wrong")
    assert client.get(SEND).status_code == 401


def test_end_user_cannot_send(user_api, recipient):
    response = send(user_api(recipient))
    assert response.status_code == 403


def test_user_sees_only_own_notifications(app_api, user_api, recipient, make_user):
    other = make_user("43")
    mine = send(app_api).json()["ids"][0]
    theirs = send(app_api, recipients=["43"]).json()["ids"][0]

    api = user_api(recipient)
    listing = api.get(SEND).json()
    assert listing["total"] == 1 and listing["results"][0]["id"] == mine
    assert api.get(f"{SEND}{mine}/").status_code == 200
    assert api.get(f"{SEND}{theirs}/").status_code == 404
    assert user_api(other).get(f"{SEND}{mine}/").status_code == 404


def test_listing_is_paginated(app_api, user_api, recipient):
    for number in range(5):
        send(app_api, title=f"n{number}")
    page = user_api(recipient).get(SEND, {"limit": 2, "page": 2}).json()
    assert page["total"] == 5 and page["page"] == 2 and page["limit"] == 2
    assert [n["title"] for n in page["results"]] == ["n2", "n1"]


def test_oversized_body_is_a_413(app_api, recipient):
    response = send(app_api, message="x" * (2 * 1024 * 1024))
    assert response.status_code == 413
