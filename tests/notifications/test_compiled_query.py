"""notifications.models.CompiledQuery: a query compiled once per process, run raw with new values."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Count

from notifications.encryption import is_token
from notifications.models import (
    PLACEHOLDER_ID,
    PLACEHOLDER_UUID,
    Category,
    CompiledQuery,
    Notification,
    RecipientProfile,
    categories_cache,
)


@pytest.mark.django_db
def test_it_answers_what_the_orm_answers_and_builds_the_query_once(make_user):
    category = Category.objects.create(key="compiled", name="Compiled")
    alice, bob = make_user("alice"), make_user("bob")
    rows = [Notification.objects.create(recipient=user, category=category, title=f"{user.username} {i}",
                                        data={"n": i}) for i in range(3) for user in (alice, bob)]
    built = []

    def titled(ids, minimum):
        built.append(ids)
        return (Notification.objects.filter(id__any=ids, title__gte=minimum).only("id", "title", "data", "recipient_id")
                .annotate(same_recipient=Count("recipient__notifications")).order_by("title"))

    query = CompiledQuery(titled, ids=[PLACEHOLDER_UUID], minimum="placeholder minimum")
    for wanted, minimum in [([rows[0].id, rows[3].id, rows[4].id], "alice"), ([rows[1].id], "b"), ([], "a")]:
        expected = [(n.id, n.title, n.data, n.recipient_id, n.same_recipient) for n in titled(wanted, minimum)]
        got = [(n.id, n.title, n.data, n.recipient_id, n.same_recipient) for n in query.instances(ids=wanted, minimum=minimum)]
        assert got == expected
    assert expected == [] and len(got) == 0
    assert len(built) == 1 + 3  # once compiled, plus this test's own ORM runs

    counts = CompiledQuery(lambda user_ids: Notification.objects.filter(recipient_id__any=user_ids)
                           .order_by().values("recipient_id").annotate(n=Count("id")).values_list("recipient_id", "n"),
                           user_ids=[PLACEHOLDER_ID])
    assert dict(counts.rows(user_ids=[alice.id, bob.id, PLACEHOLDER_ID])) == {alice.id: 3, bob.id: 3}


@pytest.mark.django_db
def test_a_placeholder_that_is_no_parameter_of_the_sql_is_named():
    # LIMIT is written into the SQL, not passed as a parameter.
    query = CompiledQuery(lambda ids, limit: Notification.objects.filter(id__any=ids)[:limit],
                          ids=[PLACEHOLDER_UUID], limit=987_654)
    with pytest.raises(ImproperlyConfigured, match="the placeholder 'limit' is not a parameter"):
        list(query.instances(ids=[], limit=5))


def the_batch(ids):
    return (Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("recipient", "recipient__profile", "category").filter(id__any=ids).order_by("title"))


def fields_of(obj):
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def related_of(notification):
    return notification.recipient.username, fields_of(notification.category), getattr(notification.recipient, "profile", None)


@pytest.fixture
def sensitive(settings):
    settings.NOTIFY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    yield Category.objects.create(key="compiled-health", name="Results", sensitive=True)
    categories_cache.forget()


@pytest.mark.django_db
def test_objects_are_what_iterating_the_queryset_gives_select_related_and_sealed_fields_included(
        make_user, sensitive, django_assert_num_queries):
    plain = Category.objects.create(key="compiled", name="Compiled")
    alice, bob = make_user("alice"), make_user("bob")
    RecipientProfile.objects.create(user=alice, phone="+15550100")  # bob has none
    rows = [Notification.objects.create(recipient=user, category=category, title=f"{user.username} {category.key}",
                                        body="The result is 7731", data={"n": i})
            for i, (user, category) in enumerate([(alice, sensitive), (bob, plain), (bob, sensitive)])]
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM notifications_notification WHERE id = %s", [rows[0].id])
        assert is_token(cursor.fetchone()[0])  # sealed in its column: the ORM's converter opens it
    built = []
    query = CompiledQuery(lambda ids: built.append(ids) or the_batch(ids), ids=[PLACEHOLDER_UUID])
    with transaction.atomic():  # select_for_update, as dispatch runs it
        for wanted in ([rows[0].id, rows[1].id, rows[2].id], [rows[2].id], []):
            expected = list(the_batch(wanted))
            got = query.objects(ids=wanted)
            assert [fields_of(n) for n in got] == [fields_of(n) for n in expected]
            with django_assert_num_queries(0):  # the relations came with the rows
                assert [related_of(n) for n in got] == [related_of(n) for n in expected]
            if wanted:
                assert {n.body for n in got} == {"The result is 7731"}  # opened
        assert [n.recipient.profile.phone for n in query.objects(ids=[rows[0].id])] == ["+15550100"]
    assert got == [] and len(built) == 1


@pytest.mark.django_db
def test_objects_refuses_a_query_that_selects_columns_only_to_order_by():
    query = CompiledQuery(lambda ids: Notification.objects.filter(id__any=ids).order_by("category__name").distinct(),
                          ids=[PLACEHOLDER_UUID])
    with pytest.raises(ImproperlyConfigured, match="objects\\(\\) takes no query that selects columns to order by only"):
        query.objects(ids=[])


@pytest.mark.django_db
def test_an_update_changes_the_rows_the_querysets_update_would(make_user):
    category = Category.objects.create(key="compiled", name="Compiled")
    ada = make_user("ada")
    statuses = ["pending", "sent", "delivered", "cancelled", "scheduled", "sent"]
    rows = [Notification.objects.create(recipient=ada, category=category, title=status, status=status)
            for status in statuses]
    settle = CompiledQuery(
        lambda ids, status: Notification.objects.filter(id__any=ids, status__in=["pending", "sent"]).exclude(
            status=status),
        updates={"status": "status"}, ids=[PLACEHOLDER_UUID], status="placeholder status")
    wanted = [row.id for row in rows[:5]]
    expected = set(Notification.objects.filter(id__any=wanted, status__in=["pending", "sent"]).exclude(status="sent")
                   .values_list("id", flat=True))

    assert settle.update(ids=wanted, status="sent") == len(expected) == 1  # the pending one; "sent" stays
    assert [Notification.objects.get(id=row.id).status for row in rows] == [
        "sent", "sent", "delivered", "cancelled", "scheduled", "sent"]
    assert settle.update(ids=[rows[1].id, rows[5].id], status="delivered") == 2
    assert settle.update(ids=[], status="failed") == 0
    assert [Notification.objects.get(id=row.id).status for row in rows] == [
        "sent", "delivered", "delivered", "cancelled", "scheduled", "delivered"]
