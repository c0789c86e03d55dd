"""GET/PUT /api/notifications/preferences/ and the operators' /api/users/{username}/preferences/."""

from datetime import time

import pytest
from django.contrib.auth.models import Group

from channels_delivery import registry
from notifications.models import ChannelPreference, GroupPreference, QuietHours

pytestmark = pytest.mark.django_db

URL = "/api/notifications/preferences/"
CHANNELS = {"inApp" if name == "inapp" else name for name in registry.NAMES}


def fields(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


def test_get_answers_the_effective_document(api, ada):
    group = Group.objects.create(name="quiet-people")
    group.user_set.add(ada)
    GroupPreference.objects.create(group=group, category_id="orders", channel="sms", enabled=False)

    document = api.get(URL).json()

    assert {key for key in document if key in CHANNELS} == CHANNELS
    assert all(document[key] is True for key in CHANNELS)
    assert set(document["channels"]) == {"general", "orders", "messages", "system"}
    assert document["channels"]["orders"]["sms"] is False and document["channels"]["messages"]["sms"] is True
    assert set(document["channels"]["orders"]) == CHANNELS
    assert document["critical"] == ["system"] and document["quietHours"] is None


def test_put_accepts_the_documented_shape(api, ada):
    body = {
        "email": True, "push": False, "inApp": True,
        "channels": {"orders": {"email": True, "push": True, "inApp": False}},
    }

    response = api.put(URL, body, format="json")

    assert response.status_code == 200, response.content
    document = response.json()
    assert document["push"] is False and document["channels"]["orders"]["push"] is True
    assert document["channels"]["orders"]["inApp"] is False and document["channels"]["messages"]["push"] is False
    stored = set(ChannelPreference.objects.filter(user=ada).values_list("category_id", "channel", "enabled"))
    assert stored == {
        (None, "email", True), (None, "push", False), (None, "inapp", True),
        ("orders", "email", True), ("orders", "push", True), ("orders", "inapp", False),
    }


def test_the_get_document_can_be_put_back(api):
    document = api.get(URL).json()
    document["sms"] = False
    assert api.put(URL, document, format="json").status_code == 200
    assert api.get(URL).json()["sms"] is False


def test_null_removes_the_users_switch(api, ada):
    api.put(URL, {"email": False, "channels": {"orders": {"sms": False}}}, format="json")
    response = api.patch(URL, {"email": None, "channels": {"orders": {"sms": None}}}, format="json")
    assert response.status_code == 200
    assert not ChannelPreference.objects.filter(user=ada).exists()


def test_quiet_hours_round_trip(api, ada):
    body = {"quietHours": {
        "enabled": True, "timezone": "Europe/Paris", "start": "22:00", "end": "07:00", "days": [5, 1, 2, 3, 4, 1]
    }}

    response = api.put(URL, body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["quietHours"] == {
        "enabled": True, "timezone": "Europe/Paris", "start": "22:00", "end": "07:00", "days": [1, 2, 3, 4, 5]
    }
    quiet = QuietHours.objects.get(user=ada)
    assert (quiet.start, quiet.end) == (time(22, 0), time(7, 0))
    assert api.put(URL, {"quietHours": None}, format="json").json()["quietHours"] is None
    assert not QuietHours.objects.filter(user=ada).exists()


def test_critical_category_cannot_be_switched_off(api, ada):
    errors = fields(api.put(URL, {"channels": {"system": {"email": False, "sms": True}}}, format="json"))
    assert errors == {"channels": {"system": {"email": ["Category 'system' is critical and cannot be switched off."]}}}
    assert not ChannelPreference.objects.filter(user=ada).exists()


def test_a_global_off_leaves_critical_categories_on(api):
    document = api.put(URL, {"email": False}, format="json").json()
    assert document["channels"]["system"]["email"] is True and document["channels"]["orders"]["email"] is False


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"channels": {"nope": {"email": True}}}, {"channels": {"nope": ["Unknown category 'nope'."]}}),
        ({"channels": {"orders": {"fax": True}}}, {"channels": {"orders": {"fax": ["Unknown channel."]}}}),
        ({"fax": True}, {"fax": ["Unknown channel or field."]}),
        ({"inapp": True}, {"inapp": ["Unknown channel or field."]}),
        ({"email": "yes"}, {"email": ["Must be a valid boolean."]}),
        ({"email": 1}, {"email": ["Must be a valid boolean."]}),
        ({"channels": ["orders"]}, "channels"),
        ({"channels": {"orders": True}}, "channels"),
    ],
)
def test_bad_switches_are_field_errors(api, ada, body, expected):
    errors = fields(api.put(URL, body, format="json"))
    if isinstance(expected, str):
        assert set(errors) == {expected}
    else:
        assert errors == expected
    assert not ChannelPreference.objects.filter(user=ada).exists()


@pytest.mark.parametrize(
    "quiet_hours, field",
    [
        ({"timezone": "Mars/Olympus_Mons", "start": "22:00", "end": "07:00"}, "timezone"),
        ({"timezone": "../../etc/passwd", "start": "22:00", "end": "07:00"}, "timezone"),
        ({"timezone": "UTC", "start": "25:00", "end": "07:00"}, "start"),
        ({"timezone": "UTC", "start": "22:00", "end": 7}, "end"),
        ({"timezone": "UTC", "start": "22:00", "end": "22:00"}, "end"),
        ({"timezone": "UTC", "start": "22:00", "end": "07:00", "days": [0, 8]}, "days"),
        ({"timezone": "UTC", "start": "22:00", "end": "07:00", "days": "weekdays"}, "days"),
        ({"timezone": "UTC", "start": "22:00", "end": "07:00", "enabled": "sometimes"}, "enabled"),
        ({"timezone": "UTC", "start": "22:00", "end": "07:00", "volume": 0}, "volume"),
        ({"start": "22:00", "end": "07:00"}, "timezone"),
    ],
)
def test_bad_quiet_hours_are_field_errors(api, ada, quiet_hours, field):
    errors = fields(api.put(URL, {"quietHours": quiet_hours}, format="json"))
    assert field in errors["quietHours"]
    assert not QuietHours.objects.filter(user=ada).exists()


def test_a_body_that_is_not_an_object_is_a_400(api):
    assert api.put(URL, [1, 2], format="json").status_code == 400
    assert api.put(URL, data="{", content_type="application/json").status_code == 400


def test_preferences_belong_to_the_caller(api, user_api, make_user, ada):
    bob = make_user("bob")
    user_api(bob).put(URL, {"email": False}, format="json")
    assert api.get(URL).json()["email"] is True
    assert not ChannelPreference.objects.filter(user=ada).exists()


def test_api_keys_and_anonymous_callers_are_refused(app_api, client):
    assert app_api.get(URL).status_code == 403
    assert client.get(URL).status_code == 401


def test_operators_read_and_write_another_users_preferences(user_api, make_user, ada, api):
    staff = user_api(make_user("ops", is_staff=True))
    response = staff.put("/api/users/ada/preferences/", {"channels": {"orders": {"email": False}}}, format="json")
    assert response.status_code == 200
    assert api.get(URL).json()["channels"]["orders"]["email"] is False
    assert staff.get("/api/users/ghost/preferences/").status_code == 404


def test_end_users_cannot_use_the_operator_endpoint(api, make_user):
    make_user("bob")
    assert api.get("/api/users/bob/preferences/").status_code == 403
    assert api.put("/api/users/bob/preferences/", {"email": False}, format="json").status_code == 403
