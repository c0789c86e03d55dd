"""Credentials and sensitive content are encrypted in Postgres: someone who reads the tables (a
backup, a replica, a SQL injection elsewhere) finds tokens, not secrets. Each test reads the raw
columns with SQL, around the ORM."""

import threading

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notifications.encryption import UnreadableValue, is_token, keyring_for
from notifications.models import (
    Broadcast, Category, Delivery, DeliveryAttempt, Notification, SlackWebhook, WebhookEndpoint, categories_cache,
    copy_create,
)
from notifications.tasks import dispatch_notifications

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def raw(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def raw_text(table, column, **where):
    condition = " AND ".join(f"{name} = %s" for name in where) or "TRUE"
    return [row[0] for row in raw(f"SELECT {column}::text FROM notifications_{table} WHERE {condition}", *where.values())]


@pytest.fixture
def keys(settings):
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_A]
    return settings


@pytest.fixture
def sensitive(db):
    category = Category.objects.create(key="health", name="Health results", sensitive=True)
    yield category
    categories_cache.forget()


# --- credentials --------------------------------------------------------------------------

@pytest.mark.django_db
def test_webhook_secret_and_slack_url_are_tokens_in_their_columns(keys, make_user, user_api, settings):
    settings.SLACK_WEBHOOK_HOSTS = ["hooks.slack.com"]
    user = make_user("alice")
    api = user_api(user)
    created = api.post("/api/me/webhooks/", {"url": "https://hooks.example.com/in"}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    slack_url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
    assert api.post("/api/me/slack-webhooks/", {"url": slack_url}, format="json").status_code == 201

    [stored_secret] = raw_text("webhookendpoint", "secret")
    [stored_url] = raw_text("slackwebhook", "url")
    assert secret not in stored_secret and "whsec_" not in stored_secret and is_token(stored_secret)
    assert "XXXXsecretXXXX" not in stored_url and "hooks.slack.com" not in stored_url and is_token(stored_url)
    # The application reads the plaintext it needs to sign and post.
    assert WebhookEndpoint.objects.get().secret == secret
    assert SlackWebhook.objects.get().url == slack_url
    # Two endpoints with the same secret would not even share a token (Fernet is randomised).
    endpoint = WebhookEndpoint.objects.create(user=user, url="https://b.example.com/", secret=secret)
    assert raw_text("webhookendpoint", "secret", id=endpoint.id)[0] != stored_secret


@pytest.mark.django_db
def test_an_equality_filter_on_ciphertext_is_refused_not_silently_empty(keys, make_user):
    from django.core.exceptions import FieldError

    WebhookEndpoint.objects.create(user=make_user("bob"), url="https://x.example.com/", secret="whsec_AAAA")
    with pytest.raises(FieldError):
        list(WebhookEndpoint.objects.filter(secret="whsec_AAAA"))
    assert WebhookEndpoint.objects.filter(secret__isnull=False).count() == 1


@pytest.mark.django_db
def test_an_apps_token_signing_secret_is_a_token_in_its_column_and_still_signs(keys, make_user):
    from rest_framework.test import APIClient

    from notifications.api.end_user_tokens import ensure_token_secret
    from notifications.models import ApiClient
    from notifications.tenancy import grant
    from tests.support import end_user_token

    client, _key = ApiClient.issue("Shop", make_user("shop-owner"))
    assert ApiClient.objects.get(pk=client.pk).token_secret is None
    assert raw("SELECT token_secret FROM notifications_apiclient WHERE id = %s", client.pk) == [(None,)]
    grant(client, [make_user("ada")])
    secret = ensure_token_secret(client)
    assert len(secret) >= 48
    [stored] = raw_text("apiclient", "token_secret", id=client.pk)
    assert is_token(stored) and secret not in stored
    client = ApiClient.objects.get(pk=client.pk)
    assert client.token_secret == secret
    assert ensure_token_secret(client) == secret  # made once, then kept
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {end_user_token(client, 'ada')}")
    assert reader.get("/api/notifications/").status_code == 200


def test_encrypted_json_field_round_trips_and_hides_header_values(keys):
    """The field type for auth headers (any model may use it)."""
    from notifications.encryption import EncryptedJSONField

    field = EncryptedJSONField()
    stored = field.get_db_prep_save({"Authorization": "Bearer top-secret"}, connection)
    assert "top-secret" not in stored and "Authorization" not in stored and is_token(stored)
    assert field.from_db_value(stored, None, connection) == {"Authorization": "Bearer top-secret"}
    assert field.get_db_prep_save(None, connection) is None


def test_a_token_no_configured_key_opens_is_an_error_not_garbage(settings):
    from notifications.encryption import EncryptedTextField

    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_A]
    token = EncryptedTextField().get_db_prep_save("whsec_x", connection)
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(UnreadableValue):
        EncryptedTextField().from_db_value(token, None, connection)


# --- sensitive categories -------------------------------------------------------------------

@pytest.mark.django_db
def test_sensitive_category_content_is_sealed_in_every_column_that_holds_it(keys, sensitive, app_api, make_user,
                                                                         user_api):
    patient = make_user("patient")
    answer = app_api.post("/api/notifications/", {
        "recipients": ["patient"], "category": "health", "title": "Your HIV test result",
        "message": "The result is NEGATIVE-7731", "data": {"lab": "LAB-99321"}, "channels": ["inapp", "email"],
    }, format="json")
    assert answer.status_code == 202, answer.content
    [notification_id] = answer.json()["ids"]
    dispatch_notifications([notification_id])
    assert Delivery.objects.filter(notification_id=notification_id).count() == 2

    # With a space, "HIV test" cannot turn up by chance inside a token's base64 (bare "HIV" did, in CI).
    plaintexts = ["HIV test", "NEGATIVE-7731", "LAB-99321"]
    stored = [
        *raw("SELECT title, body, data::text, context::text FROM notifications_notification WHERE id = %s",
             notification_id)[0],
        *(row[0] for row in raw("SELECT message::text FROM notifications_delivery WHERE notification_id = %s",
                                notification_id)),
    ]
    for column in stored:
        for secret in plaintexts:
            assert secret not in column
    assert is_token(stored[0]) and is_token(stored[1])
    # The recipient and the sender read it as written.
    inbox = user_api(patient).get("/api/notifications/").json()["results"]
    assert inbox[0]["title"] == "Your HIV test result" and inbox[0]["data"] == {"lab": "LAB-99321"}
    email = Delivery.objects.get(notification_id=notification_id, channel="email")
    assert "NEGATIVE-7731" in str(email.message)


@pytest.mark.django_db
def test_other_categories_stay_plain_and_queryable(keys, sensitive, app_api, make_user):
    make_user("shopper")
    answer = app_api.post("/api/notifications/", {
        "recipients": ["shopper"], "category": "orders", "title": "Order 123 shipped", "data": {"order": 123},
    }, format="json")
    [notification_id] = answer.json()["ids"]
    assert raw_text("notification", "title", id=notification_id) == ["Order 123 shipped"]
    assert Notification.objects.filter(data__order=123).count() == 1


@pytest.mark.django_db
def test_a_broadcast_payload_of_a_sensitive_category_is_sealed(keys, sensitive, app_api, make_user):
    make_user("p1")
    answer = app_api.post("/api/notifications/", {
        "to": {"users": ["p1"]}, "category": "health", "title": "Screening reminder XQ-17",
        "data": {"clinic": "North-55"},
    }, format="json")
    assert answer.status_code == 202, answer.content
    [payload] = raw_text("broadcast", "payload")
    assert "XQ-17" not in payload and "North-55" not in payload
    assert Broadcast.objects.get().payload["title"] == "Screening reminder XQ-17"

    from notifications.planning.audiences import fan_out_chunk, plan

    for number in plan(answer.json()["broadcast_id"]):
        fan_out_chunk(answer.json()["broadcast_id"], number)
    [title] = raw_text("notification", "title")
    assert is_token(title) and Notification.objects.get().title == "Screening reminder XQ-17"


@pytest.mark.django_db
def test_bulk_update_seals_like_save(keys, sensitive, make_user):
    notification = Notification.objects.create(recipient=make_user("u"), category=sensitive, title="t", body="b")
    notification.body = "updated secret body"
    Notification.objects.bulk_update([notification], ["body"])
    [body] = raw_text("notification", "body")
    assert is_token(body) and Notification.objects.get().body == "updated secret body"
    assert notification.body == "updated secret body"  # the instance keeps its plaintext


@pytest.mark.django_db
def test_copy_create_writes_what_bulk_create_writes(keys, sensitive, make_user):
    """Dispatch inserts its deliveries (and chunks their attempts) by COPY: the same sealing,
    auto_now times and defaults as bulk_create, and rows numbered by the database stay unnumbered."""
    notification = Notification.objects.create(recipient=make_user("u"), category=sensitive, title="HIV test", body="b")
    copied = Delivery(notification=notification, channel="email", status="queued", message={"subject": "HIV test"})
    inserted = Delivery(notification=notification, channel="sms", status="queued", message={"text": "HIV test"})
    copy_create([copied])
    Delivery.objects.bulk_create([inserted])
    assert not copied._state.adding
    for delivery in (copied, inserted):
        [message] = raw_text("delivery", "message", id=delivery.id)
        assert "HIV test" not in message  # sealed
    rows = {d.channel: d for d in Delivery.objects.all()}
    assert rows["email"].message == {"subject": "HIV test"} and rows["sms"].message == {"text": "HIV test"}
    assert rows["email"].created_at and rows["email"].updated_at and rows["email"].provider_payload == {}
    attempts = [DeliveryAttempt(delivery=copied, number=n, outcome="sent") for n in (1, 2)]
    copy_create(attempts)
    assert all(a.pk is None for a in attempts)
    assert sorted(DeliveryAttempt.objects.filter(delivery=copied).values_list("number", flat=True)) == [1, 2]
    with pytest.raises(ValueError, match="primary key"):
        copy_create([Delivery(notification=notification, channel="push", id=None)])


# --- migration and rotation -------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_rows_stored_in_plaintext(keys, make_user):
    executor = MigrationExecutor(connection)
    migration = ("notifications", "0002_encryption_at_rest")
    before = executor.loader.graph.node_map[migration].parents
    [previous] = [parent.key for parent in before if parent.key[0] == "notifications"]
    leaves = executor.loader.graph.leaf_nodes()
    user = make_user("legacy")
    try:
        executor.migrate([previous])
        raw("INSERT INTO notifications_webhookendpoint (user_id, url, secret, description, active, created_at, "
            "deactivated_reason) VALUES (%s, 'https://legacy.example.com/', 'whsec_bGVnYWN5', '', true, now(), '') "
            "RETURNING id", user.id)
        raw("INSERT INTO notifications_slackwebhook (user_id, url, channel_name, active, created_at, "
            "deactivated_reason) VALUES (%s, 'https://hooks.slack.com/services/LEGACY', '', true, now(), '') "
            "RETURNING id", user.id)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)  # through the encryption migration, back to today
    [secret] = raw_text("webhookendpoint", "secret")
    [url] = raw_text("slackwebhook", "url")
    assert is_token(secret) and "bGVnYWN5" not in secret
    assert is_token(url) and "LEGACY" not in url
    assert WebhookEndpoint.objects.get().secret == "whsec_bGVnYWN5"
    assert SlackWebhook.objects.get().url == "https://hooks.slack.com/services/LEGACY"


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_token_secrets_stored_in_plaintext_and_reverses(keys, make_user):
    from notifications.models import ApiClient

    executor = MigrationExecutor(connection)
    migration = ("notifications", "0009_encrypt_token_secret")
    [previous] = [p.key for p in executor.loader.graph.node_map[migration].parents if p.key[0] == "notifications"]
    leaves = executor.loader.graph.leaf_nodes()
    owner = make_user("legacy-owner")
    try:
        executor.migrate([previous])
        for prefix, secret in (("legacy01", "plain-legacy-secret"), ("legacy02", "")):
            raw("INSERT INTO notifications_apiclient (name, owner_id, key_prefix, key_hash, scopes, active, created_at, "
                "token_secret, token_public_key) VALUES (%s, %s, %s, '', '{send}', true, now(), %s, '') RETURNING id",
                prefix, owner.id, prefix, secret)
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
        [sealed] = raw_text("apiclient", "token_secret", key_prefix="legacy01")
        assert is_token(sealed) and "plain-legacy-secret" not in sealed
        assert raw_text("apiclient", "token_secret", key_prefix="legacy02") == [None]
        assert ApiClient.objects.get(key_prefix="legacy01").token_secret == "plain-legacy-secret"
        # Back to the plaintext column: the secret readable again, none as ''.
        executor = MigrationExecutor(connection)
        executor.migrate([previous])
        assert raw_text("apiclient", "token_secret", key_prefix="legacy01") == ["plain-legacy-secret"]
        assert raw_text("apiclient", "token_secret", key_prefix="legacy02") == [""]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
    assert ApiClient.objects.get(key_prefix="legacy01").token_secret == "plain-legacy-secret"


@pytest.mark.django_db(transaction=True)
def test_rotation_re_encrypts_while_readers_keep_reading(settings, make_user):
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_A]
    user = make_user("rotating")
    secrets = {WebhookEndpoint.objects.create(user=user, url=f"https://{n}.example.com/").id: None for n in range(12)}
    for endpoint in WebhookEndpoint.objects.all():
        secrets[endpoint.id] = endpoint.secret

    # Step 1 of a rotation: every process knows the new key (first) and the old one.
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    stop, reads, failures = threading.Event(), [0], []

    def reader():
        from django.db import connections

        try:
            while not stop.is_set():
                for endpoint in WebhookEndpoint.objects.all():
                    if endpoint.secret != secrets[endpoint.id]:
                        failures.append(endpoint.id)
                reads[0] += 1
        except Exception as error:  # any error while rotating is a failure of "no downtime"
            failures.append(repr(error))
        finally:
            connections.close_all()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        call_command("rotate_encryption_keys", "--batch-size", "1")
    finally:
        stop.set()
        thread.join()
    assert failures == [] and reads[0] > 0

    # Step 2: the old key can go; everything opens with the new key alone.
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_B]
    assert {e.id: e.secret for e in WebhookEndpoint.objects.all()} == secrets
    old_only = keyring_for((KEY_A,))
    from cryptography.fernet import InvalidToken

    for token in raw_text("webhookendpoint", "secret"):
        with pytest.raises(InvalidToken):
            old_only.decrypt(token.encode())


@pytest.mark.django_db
def test_rotation_seals_content_stored_before_its_category_was_marked_sensitive(keys, make_user):
    category = Category.objects.create(key="hr", name="HR")
    notification = Notification.objects.create(recipient=make_user("emp"), category=category, title="Salary 91000")
    Delivery.objects.create(notification=notification, channel="inapp", message={"title": "Salary 91000"})
    assert raw_text("notification", "title") == ["Salary 91000"]
    category.sensitive = True
    category.save()
    try:
        call_command("rotate_encryption_keys")
        assert "91000" not in raw_text("notification", "title")[0]
        assert "91000" not in raw_text("delivery", "message")[0]
        assert Notification.objects.get().title == "Salary 91000"
        assert Delivery.objects.get().message == {"title": "Salary 91000"}
    finally:
        categories_cache.forget()


def test_rotation_command_refuses_a_bad_batch_size(capsys):
    with pytest.raises(SystemExit):
        call_command("rotate_encryption_keys", "--batch-size", "0")
    assert "--batch-size must be at least 1" in capsys.readouterr().err


def test_deploy_check_refuses_missing_or_malformed_keys(settings):
    settings.NOTIFY_ENCRYPTION_KEYS = []
    assert "notifications.E101" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.NOTIFY_ENCRYPTION_KEYS = ["not-a-key"]
    assert "notifications.E102" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.NOTIFY_ENCRYPTION_KEYS = [KEY_A]
    assert not {"notifications.E101", "notifications.E102"} & {m.id for m in run_checks(include_deployment_checks=True)}
