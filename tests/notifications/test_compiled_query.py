"""notifications.models.CompiledQuery: a query compiled once per process, run raw with new values."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count

from notifications.models import PLACEHOLDER_ID, PLACEHOLDER_UUID, Category, CompiledQuery, Notification


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
