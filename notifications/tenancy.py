"""Which recipients an API client may reach: those it (or another key of its owner) created or
was granted. Operators (staff users, keys with the `admin` scope) reach everyone.

Someone else's recipient is answered exactly like a user that does not exist, so a client can
neither read nor enumerate another tenant's usernames.
"""

from django.contrib.auth import get_user_model
from django.db import connection

from notifications.models import ApiClient, RecipientGrant

User = get_user_model()
LOADED = ("id", "username")  # what reachable_by_username() reads of each user


def reaches_everyone(client):
    """No client (a staff user acting), or a client with the admin scope."""
    return client is None or client.has_scope("admin")


def managed_users(client, users=None):
    """The users (of `users`, default all) that `client` may reach."""
    users = User.objects.all() if users is None else users
    if reaches_everyone(client):
        return users
    return users.filter(
        pk__in=RecipientGrant.objects.filter(client__owner_id=client.owner_id).values("user_id")
    )


def reachable_by_username(client, usernames):
    """{username: user} of the active users named in `usernames` that `client` may reach, in one
    statement with no ORM query building: this is every send's one SELECT, and building the
    equivalent managed_users() queryset cost the API ten times the query's own time."""
    if not usernames:
        return {}
    grants, clients = RecipientGrant._meta.db_table, ApiClient._meta.db_table
    sql = (
        f"SELECT u.id, u.username FROM {User._meta.db_table} u WHERE u.username = ANY(%s) AND u.is_active"
        + ("" if reaches_everyone(client) else
           f" AND EXISTS (SELECT 1 FROM {grants} g JOIN {clients} c ON c.id = g.client_id"
           " WHERE g.user_id = u.id AND c.owner_id = %s)")
    )
    params = [list(usernames)] + ([] if reaches_everyone(client) else [client.owner_id])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Users with only these two fields loaded, as raw() makes them, without its per-call set-up.
    return {username: User.from_db(connection.alias, LOADED, (user_id, username)) for user_id, username in rows}


def grant(client, users):
    """Make `users` recipients of `client` (and so of its owner's other keys); idempotent."""
    if client is None:
        return
    RecipientGrant.objects.bulk_create(
        [RecipientGrant(client=client, user=user) for user in users], ignore_conflicts=True
    )
