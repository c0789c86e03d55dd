"""The audit trail over the API: every operator action and preference change is recorded with
its actor, and operators read it back; it is purged past its retention."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from notifications.clock import cleanup
from notifications.models import (
    ApiClient,
    AuditEvent,
    DeliveryStatus,
    NotificationStatus,
    Template,
)
from tests.support import chain

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user, user_api):
    olga = make_user("op-olga", is_staff=True)
    # Managing API clients takes the Django permissions, not only staff.
    olga.user_permissions.add(*Permission.objects.filter(codename__in=["add_apiclient", "change_apiclient"]))
    return user_api(olga)


def test_operator_actions_over_the_api_are_recorded_with_their_actor(operator, app_api, make_user, settings):
    lin = make_user("lin")
    notification, [failed] = chain(lin, ("inapp", DeliveryStatus.FAILED))
    response = operator.post(f"/api/deliveries/{failed.id}/redrive/")
    assert response.status_code == 202
    failed.refresh_from_db()
    failed.status = DeliveryStatus.FAILED
    failed.save()
    assert operator.post(f"/api/notifications/{notification.id}/resend/", {"reason": "outage over"},
                         format="json").status_code == 202

    created = operator.post("/api/templates/", {"key": "orders", "channel": "email", "subject": "S", "body": "B"},
                            format="json").json()
    operator.patch(f"/api/templates/{created['id']}/", {"body": "B2"}, format="json")
    second = Template.objects.get(key="orders", version=2)
    assert second.author == "staff op-olga"
    assert operator.delete(f"/api/templates/{second.id}/").status_code == 204

    key = operator.post("/api/clients/", {"name": "Shop", "scopes": ["send"]}, format="json").json()
    operator.post(f"/api/clients/{key['id']}/revoke/")

    pending, _ = chain(lin, ("email", DeliveryStatus.QUEUED))
    # The sender's own API key cancels: the actor is the API client, not its owner.
    pending.sender = ApiClient.objects.get(name="Acme shop")
    pending.save()
    assert app_api.post(f"/api/notifications/{pending.id}/cancel/").status_code == 200

    events = list(AuditEvent.objects.order_by("created_at", "id"))
    assert [e.action for e in events] == [
        "delivery.redrive", "notification.resend", "template.create", "template.update", "template.delete",
        "api_client.create", "api_client.revoke", "notification.cancel",
    ]
    assert {e.actor for e in events[:-1]} == {"staff op-olga"}
    assert all(e.via == "api" for e in events)
    assert events[-1].actor.startswith("api client Acme shop") and events[-1].actor_client is not None
    assert events[-1].before == {"status": NotificationStatus.DISPATCHED}
    assert events[1].reason == "outage over"
    assert events[3].before["body"] == "B" and events[3].after["body"] == "B2"
    assert "key" not in str(events[5].after) and key["key"] not in str(events[5].after)
    assert all(e.request_id for e in events)


def test_preference_changes_by_users_and_by_staff_are_recorded(operator, make_user, user_api):
    lin = make_user("lin")
    own = user_api(lin)
    assert own.patch("/api/notifications/preferences/", {"sms": False}, format="json").status_code == 200
    assert own.patch("/api/notifications/preferences/", {"sms": False}, format="json").status_code == 200  # no change
    assert operator.put("/api/users/lin/preferences/", {"email": False}, format="json").status_code == 200
    by_user, by_staff = AuditEvent.objects.filter(action="preferences.change").order_by("created_at", "id")
    assert by_user.actor == "user lin" and by_user.before["sms"] is True and by_user.after["sms"] is False
    assert by_staff.actor == "staff op-olga" and by_staff.target_id == str(lin.pk)
    assert by_staff.after["email"] is False


def test_operators_read_the_trail_with_filters(operator, make_user, user_api, app_api):
    lin = make_user("lin")
    user_api(lin).patch("/api/notifications/preferences/", {"push": False}, format="json")
    _, [failed] = chain(lin, ("inapp", DeliveryStatus.FAILED))
    operator.post(f"/api/deliveries/{failed.id}/redrive/")

    listed = operator.get("/api/audit/").json()
    assert [e["action"] for e in listed["results"]] == ["delivery.redrive", "preferences.change"]
    only = operator.get("/api/audit/", {"action": "delivery.redrive", "target_id": str(failed.id)}).json()
    assert [e["target_id"] for e in only["results"]] == [str(failed.id)]
    assert operator.get("/api/audit/", {"actor": "lin"}).json()["results"][0]["actor"] == "user lin"
    future = (timezone.now() + timezone.timedelta(hours=1)).isoformat()
    assert operator.get("/api/audit/", {"since": future}).json()["results"] == []

    bad = operator.get("/api/audit/", {"action": "nope", "since": "yesterday"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"action", "since"}
    # ISO 8601 allows offsets Postgres refuses (beyond +-15:59): the moment is moved to UTC first.
    far_offset = operator.get("/api/audit/", {"since": "0114-01-29T22:44:39-22:54"})
    assert far_offset.status_code == 200 and len(far_offset.json()["results"]) == 2
    before_year_one = operator.get("/api/audit/", {"since": "0001-01-01T00:00:00+05:00"})
    assert before_year_one.status_code == 400 and set(before_year_one.json()["error"]["fields"]) == {"since"}
    assert user_api(lin).get("/api/audit/").status_code == 403
    assert app_api.get("/api/audit/").status_code == 403


def test_the_purge_removes_events_past_retention(make_user, settings):
    settings.NOTIFY_RETENTION_AUDIT_DAYS = 30
    from notifications.ops import audit

    lin = make_user("lin")
    old = audit.record(audit.Action.PREFERENCES_CHANGE, lin, via="cli", actor="cli test")
    AuditEvent.objects.filter(id=old.id).update(created_at=timezone.now() - timezone.timedelta(days=31))
    recent = audit.record(audit.Action.PREFERENCES_CHANGE, lin, via="cli", actor="cli test")
    report = cleanup.purge()
    assert report["audit events"] == {"notifications.AuditEvent": 1}
    assert list(AuditEvent.objects.values_list("id", flat=True)) == [recent.id]
