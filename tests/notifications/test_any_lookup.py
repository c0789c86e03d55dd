"""`field__any=[...]` (notifications.models.AnyOf): the batches' `= ANY(array)`, equal to `__in`."""

import uuid

import pytest

from notifications.models import Category, ChannelPreference, Notification


@pytest.mark.django_db
def test_any_matches_what_in_matches(make_user):
    category = Category.objects.create(key="lookups", name="Lookups")
    alice, bob, carol = (make_user(name) for name in ("alice", "bob", "carol"))
    rows = [Notification.objects.create(recipient=user, category=category, title=user.username)
            for user in (alice, bob, carol)]
    ChannelPreference.objects.create(user=alice, category=category, channel="email", enabled=False)
    wanted = [rows[0].id, rows[2].id, uuid.uuid4()]  # one id matches nothing
    assert set(Notification.objects.filter(id__any=wanted)) == set(Notification.objects.filter(id__in=wanted))
    assert {n.recipient_id for n in Notification.objects.filter(recipient_id__any={alice.id, bob.id})} == {
        alice.id, bob.id}  # a set, through a foreign key
    assert list(ChannelPreference.objects.filter(user_id__any=(alice.id,)).values_list("user_id", flat=True)) == [
        alice.id]
    assert not Notification.objects.filter(id__any=[]).exists()
    assert Notification.objects.filter(category_id__any=["lookups", "other"]).count() == 3  # text keys
