"""Handshakes in batches (notifications/realtime/batching.py): the Batch itself, the batched token
check and inbox read against what one connection at a time gets, and many connections opened at
once each getting its own inbox from a real ASGI server."""

import asyncio
import json
import threading

import pytest
from django.utils import timezone

from notifications.api import end_user_tokens
from notifications.models import Delivery, DeliveryStatus, Notification
from notifications.realtime import events
from notifications.realtime.batching import Batch

pytestmark = pytest.mark.django_db(transaction=True)


def test_callers_waiting_together_share_a_batch_and_each_gets_its_own_result():
    calls = []

    def work(items):
        calls.append(list(items))
        return [item * 10 for item in items]

    batch = Batch(work, size=8, parallel=1)

    async def scenario():
        return await asyncio.gather(*(batch(n) for n in range(30)))

    assert asyncio.run(scenario()) == [n * 10 for n in range(30)]
    assert calls == [list(range(start, min(start + 8, 30))) for start in range(0, 30, 8)]

    calls.clear()
    assert asyncio.run(batch(7)) == 70  # a caller alone does not wait for company
    assert calls == [[7]]


def test_a_batch_right_after_another_waits_for_more_callers_and_one_after_a_quiet_spell_does_not():
    calls = []

    def work(items):
        calls.append(list(items))
        return items

    batch = Batch(work, size=100, gather=0.2)

    async def scenario():
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batch("a"))  # starts at once
        await asyncio.sleep(0)
        trickle = []
        for name in "bcd":  # while and after it runs, a few at a time
            trickle.append(asyncio.ensure_future(batch(name)))
            await asyncio.sleep(0.05)
        await asyncio.gather(first, *trickle)
        gathered = loop.time() - started
        await asyncio.sleep(0.3)  # quiet for longer than `gather`
        alone = loop.time()
        await batch("e")
        return gathered, loop.time() - alone

    gathered, alone = asyncio.run(scenario())
    assert calls == [["a"], ["b", "c", "d"], ["e"]]  # one batch for the trickle, not three
    assert gathered >= 0.2 and alone < 0.1


def test_an_exception_in_a_result_goes_to_its_caller_alone():
    def work(items):
        return [ValueError(f"bad {item}") if item == 3 else item for item in items]

    batch = Batch(work)

    async def scenario():
        return await asyncio.gather(*(batch(n) for n in range(6)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert [r for n, r in enumerate(results) if n != 3] == [0, 1, 2, 4, 5]
    assert isinstance(results[3], ValueError) and str(results[3]) == "bad 3"


def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs():
    failing = threading.Event()
    failing.set()

    def work(items):
        if failing.is_set():
            failing.clear()
            raise ConnectionError("database gone")
        return list(items)

    batch = Batch(work, parallel=1)

    async def scenario():
        first = await asyncio.gather(batch("a"), return_exceptions=True)
        return first, await batch("b")

    first, second = asyncio.run(scenario())
    assert isinstance(first[0], ConnectionError)
    assert second == "b"


def test_a_caller_that_went_away_is_left_out_of_the_next_batch():
    seen = []
    release = threading.Event()

    def work(items):
        seen.extend(items)
        release.wait(5)
        return list(items)

    batch = Batch(work, parallel=1)

    async def scenario():
        first = asyncio.ensure_future(batch("first"))
        await asyncio.sleep(0.05)  # "first" is in the running batch
        gone = asyncio.ensure_future(batch("gone"))
        kept = asyncio.ensure_future(batch("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        return await first, await kept

    assert asyncio.run(scenario()) == ("first", "kept")
    assert seen == ["first", "kept"]


def inbox_of(user, titles, read=(), archived=(), days_ago=0):
    for title in titles:
        notification = Notification.objects.create(
            recipient=user, category_id="orders", title=title,
            read_at=timezone.now() if title in read else None,
            archived_at=timezone.now() if title in archived else None,
        )
        if days_ago:
            Notification.objects.filter(pk=notification.pk).update(created_at=timezone.now() - timezone.timedelta(days=days_ago))
        Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.SENT)


def test_unread_missed_for_many_users_is_what_each_one_gets_alone(make_user, settings):
    settings.NOTIFY_WS_MISSED_LIMIT = 3
    ada, bob, cy = make_user("ada"), make_user("bob"), make_user("cy")
    inbox_of(ada, [f"a{n}" for n in range(5)], read={"a4"})  # over the limit: the newest 3 unread
    inbox_of(bob, ["b0", "b1", "b2"], archived={"b1"})
    inbox_of(bob, ["b-old"], days_ago=settings.NOTIFY_INBOX_MISSED_DAYS + 1)
    not_shown = Notification.objects.create(recipient=cy, category_id="orders", title="email only")
    Delivery.objects.create(notification=not_shown, channel="email", status=DeliveryStatus.SENT)

    together = events.unread_missed([ada.pk, bob.pk, cy.pk, ada.pk])
    alone = {user.pk: events.missed(user.pk) for user in (ada, bob, cy)}
    assert together == alone
    assert [m["title"] for m in together[ada.pk]] == ["a1", "a2", "a3"]
    assert [m["title"] for m in together[bob.pk]] == ["b0", "b2"]
    assert together[cy.pk] == []


def test_tokens_of_two_clients_are_checked_with_one_user_query_each(make_user, django_user_model, test_app_clients,
                                                                     django_assert_num_queries):
    from notifications.models import ApiClient
    from notifications.tenancy import grant
    from tests.support import end_user_token

    users = [make_user(name) for name in ("ada", "bob", "cy")]
    clients = []
    for name in ("Shop", "Forum"):
        client, _key = ApiClient.issue(name, make_user(f"{name}-owner"), scopes=["send"])
        client.token_secret = end_user_tokens.new_token_secret()
        client.save(update_fields=["token_secret"])
        test_app_clients.append(client)
        clients.append(client)
    shop, forum = clients
    grant(shop, users)
    grant(forum, users[:1])  # bob and cy are not the forum's
    tokens = [end_user_token(shop, "ada"), end_user_token(forum, "ada"), "not.a.jwt", end_user_token(forum, "bob"),
              end_user_token(shop, "cy"), end_user_token(shop, "nobody")]
    for client in clients:  # the clients come from the process cache, as in a running server
        ApiClient.active_by_prefix(client.key_prefix)

    with django_assert_num_queries(2):
        results = end_user_tokens.verify_many(tokens)

    assert [(r[0].username, r[1].client.pk) for r in results[:2]] == [("ada", shop.pk), ("ada", forum.pk)]
    assert str(results[2]) == "malformed token"
    assert str(results[3]).startswith("sub is not a recipient of client")
    assert (results[4][0].username, results[4][1].client.pk) == ("cy", shop.pk)
    assert str(results[5]).startswith("sub is not a recipient of client")


@pytest.mark.worker
def test_connections_opened_all_at_once_each_get_their_own_inbox(asgi_server, shop, token_for, django_user_model):
    """Their handshakes share batches; no one sees another's notifications or count."""
    from websockets.asyncio.client import connect

    from notifications.tenancy import grant

    users = django_user_model.objects.bulk_create([django_user_model(username=f"many{n}") for n in range(60)])
    grant(shop, users)
    for n, user in enumerate(users):
        inbox_of(user, [f"for {user.username} #{k}" for k in range(n % 3 + 1)])

    async def greeting(user):
        token = token_for(user.username)
        async with connect(asgi_server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as ws:
            messages = []
            while not messages or messages[-1]["type"] != "unreadCount":
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
            return messages

    async def scenario():
        return await asyncio.gather(*(greeting(user) for user in users))

    for n, (user, messages) in enumerate(zip(users, asyncio.run(scenario()))):
        titles = [m["title"] for m in messages if m["type"] == "notification"]
        assert titles == [f"for {user.username} #{k}" for k in range(n % 3 + 1)]
        assert messages[-2:] == [{"type": "missedNotifications", "count": len(titles)},
                                 {"type": "unreadCount", "count": len(titles)}]
