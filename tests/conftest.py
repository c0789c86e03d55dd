import json
import os
import secrets
import time

import pytest
import redis
from django.conf import settings
from django.db import OperationalError
from django.test import TransactionTestCase
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.celery import app as celery_app
from notifications.models import ApiClient
from tests.support.fakes.apns import FakeAPNs
from tests.support.fakes.fcm import FakeFCM
from tests.support.fakes.files import FakeFileHost
from tests.support.fakes.sendgrid import FakeSendGrid
from tests.support.fakes.slack import FakeSlack
from tests.support.fakes.slack_api import FakeSlackWebAPI
from tests.support.fakes.smtp import FakeSMTP
from tests.support.fakes.telegram import FakeTelegram
from tests.support.fakes.tls import TestCertificate
from tests.support.fakes.twilio import FakeTwilio
from tests.support.fakes.vonage import FakeVonage
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.fakes.webpush import FakePushService, new_vapid_keys
from tests.support import free_port
from tests.support.rabbitmq import fresh_vhost
from tests.support.workers import BeatProcess, WorkerProcess


def _flush_despite_workers(original):
    """A worker still finishing a task of the previous test can deadlock with the TRUNCATE that
    empties the tables between transactional tests; Postgres aborts one side, so try again."""

    def teardown(self):
        for attempt in range(5):
            try:
                return original(self)
            except Exception as error:  # flush wraps the database error in a CommandError
                if attempt == 4 or not isinstance(error.__cause__ or error, OperationalError):
                    raise
                time.sleep(0.2 * (attempt + 1))

    return teardown


TransactionTestCase._fixture_teardown = _flush_despite_workers(TransactionTestCase._fixture_teardown)

TEST_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# With a RabbitMQ broker, Redis still holds the channel layer, rate limits and the beat lock.
TEST_REDIS_URL = os.environ.get(
    "TEST_REDIS_URL", TEST_BROKER_URL if TEST_BROKER_URL.startswith("redis") else "redis://127.0.0.1:6379/15"
)


@pytest.fixture(scope="session", autouse=True)
def isolated_broker():
    """Tests use their own Redis database (or RabbitMQ vhost) so a running dev service is never touched."""
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    if TEST_BROKER_URL.startswith("amqp"):
        fresh_vhost(TEST_BROKER_URL)
    celery_app.conf.broker_url = TEST_BROKER_URL
    # Circuit and rate-limit state, read by tests, lives beside the test broker.
    settings.REDIS_URL = TEST_REDIS_URL
    settings.CACHES["throttle"]["LOCATION"] = TEST_REDIS_URL
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{**settings.CHANNEL_LAYER_HOST, "address": TEST_REDIS_URL}]
    yield TEST_BROKER_URL


@pytest.fixture(autouse=True)
def fresh_reference_caches():
    """Rows cached by an earlier test may have been rolled back with it."""
    from notifications.models import api_clients_cache, categories_cache, templates_cache

    for cache in (api_clients_cache, categories_cache, templates_cache):
        cache.forget()


@pytest.fixture(autouse=True)
def empty_dispatch_lanes(isolated_broker):
    """No send of an earlier test waits in a lane, and no lane counts as awake (its drain task
    went with that test's broker purge)."""
    from notifications import shared_state

    keys = list(shared_state.client().scan_iter("notify:dispatch:*"))
    if keys:
        shared_state.client().delete(*keys)


@pytest.fixture(autouse=True)
def fresh_throttle_windows(isolated_broker):
    """Every test starts with empty throttle windows (failed logins of one test must not refuse the next)."""
    from notifications.api.throttling import counter

    keys = list(counter().scan_iter("throttle:*"))
    if keys:
        counter().delete(*keys)


@pytest.fixture(scope="session")
def fake_sendgrid():
    fake = FakeSendGrid().start()
    yield fake
    fake.stop()


@pytest.fixture
def sendgrid(fake_sendgrid):
    fake_sendgrid.reset()
    yield fake_sendgrid
    fake_sendgrid.reset()


# The processes refuse the public development key (config/checks.py): this process and its
# workers share one random key, so what one signs (unsubscribe links) the other verifies.
WORKER_SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
settings.SECRET_KEY = os.environ["DJANGO_SECRET_KEY"] = WORKER_SECRET_KEY  # child processes too
TEST_RETRY_POLICIES = {
    "test-fixed": {"shape": "fixed", "delays": [0.2, 0.6, 1.0], "max_attempts": 4, "cap": 5, "jitter": 0},
    "test-linear": {"shape": "linear", "factor": 0.3, "max_attempts": 4, "cap": 5, "jitter": 0},
    "test-fibonacci": {"shape": "fibonacci", "factor": 0.2, "max_attempts": 5, "cap": 5, "jitter": 0},
}


def database_url():
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory):
    """prometheus_client's multiprocess directory shared by the test workers (tests/notifications/ops/test_worker_ops.py)."""
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, fake_sendgrid, isolated_broker, channel_env, metrics_dir):
    return {
        # ops: workers write metrics where the test process reads them and serve them on their own
        # port too; they log text lines with the request id, as bin/serve's do
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "NOTIFY_WORKER_METRICS_PORT": str(free_port()),
        "LOG_FORMAT": "text",
        **channel_env,
        "DATABASE_URL": database_url(),
        # Workers refuse the development fallback key (config/checks.py).
        "DJANGO_SECRET_KEY": WORKER_SECRET_KEY,
        "CELERY_BROKER_URL": isolated_broker,
        "REDIS_URL": TEST_REDIS_URL,
        "SENDGRID_API_KEY": fake_sendgrid.api_key,
        "SENDGRID_HOST": fake_sendgrid.url,
        "NOTIFY_EMAIL_BACKOFF_MAX": "2",
        "NOTIFY_INAPP_BACKOFF_MAX": "2",
        # engine: fast retries, a circuit that trips and heals within a test, a visible rate limit
        "NOTIFY_RETRY_BACKOFF": "0.25",
        "NOTIFY_EMAIL_MAX_RETRIES": "3",
        "NOTIFY_CIRCUIT_FAILURES": "4",
        "NOTIFY_CIRCUIT_WINDOW": "30",
        "NOTIFY_CIRCUIT_OPEN_SECONDS": "3",
        "NOTIFY_CIRCUIT_PROBE_SECONDS": "10",
        # Categories and templates a test saves reach the session's worker at once (in production a
        # process trusts what it read for NOTIFY_REFERENCE_TTL seconds; tests/notifications/api/test_reference_cache.py)
        "NOTIFY_REFERENCE_TTL": "0",
        "NOTIFY_RATE_LIMITS": "sendgrid=500:500",  # not binding; tests/test_engine_two_workers.py tightens it
        "NOTIFY_BROADCAST_CHUNK_SIZE": "10",
        # a drain does not linger into the next test, where it would take that test's waiting sends
        "NOTIFY_DISPATCH_LINGER": "0",
        # retry policies (tests/test_engine_retry_policies.py): exact waits, categories of their own
        "NOTIFY_RETRY_POLICIES": json.dumps(TEST_RETRY_POLICIES),
        "NOTIFY_CATEGORY_RETRY_POLICY": "retry-fixed:test-fixed,retry-fibonacci:test-fibonacci",
        "NOTIFY_PRIORITY_RETRY_POLICY": "low:test-linear",
        # status events: fixed retries, and events a killed worker held are taken back after 3 s
        "NOTIFY_STATUS_EVENT_RETRY_POLICY": "test-fixed",
        "NOTIFY_STATUS_EVENT_STUCK_AFTER": "3",
        "NOTIFY_STATUS_EVENT_GRACE": "0.5",
        # clock: one "minute" of digest windows and escalation delays lasts a second in tests
        "NOTIFY_CLOCK_MINUTE_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def celery_worker(worker_env, tmp_path_factory):
    """A real worker process consuming every queue, against the test database and broker."""
    worker = WorkerProcess(worker_env, log_dir=tmp_path_factory.mktemp("workers")).start()
    yield worker
    worker.stop()


@pytest.fixture
def test_app_clients():
    """The API clients of the app under test: the users tests make are its recipients."""
    return []


@pytest.fixture
def make_user(django_user_model, test_app_clients):
    from notifications.tenancy import grant

    def make(username, email=None, **extra):
        user = django_user_model.objects.create_user(
            username=username, email=email if email is not None else f"{username}@example.com", **extra
        )
        for client in test_app_clients:
            grant(client, [user])
        return user

    return make


@pytest.fixture
def sender_key(make_user, test_app_clients, django_user_model):
    """The key of the app under test: it manages every (non-operator) user the test makes, and
    may broadcast and send critical categories (tests of refusals use keys of their own)."""
    from notifications.tenancy import grant

    owner = make_user("acme-app", is_staff=False)
    client, key = ApiClient.issue("Acme shop", owner, scopes=["send", "read", "broadcast", "critical"])
    grant(client, django_user_model.objects.filter(is_staff=False).exclude(pk=owner.pk))
    test_app_clients.append(client)
    return key


@pytest.fixture
def app_api(sender_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {sender_key}")
    return client


@pytest.fixture
def user_api():
    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    return make


# --- One fake per provider, and the settings that point the channels at them ---
@pytest.fixture(scope="session")
def vapid_keys():
    return new_vapid_keys()


@pytest.fixture(scope="session")
def test_certificate(tmp_path_factory):
    return TestCertificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def fake_providers(vapid_keys, test_certificate):
    fakes = {
        "twilio": FakeTwilio(),
        "vonage": FakeVonage(tls=test_certificate),
        "fcm": FakeFCM(),
        "slack_api": FakeSlackWebAPI(),
        "files": FakeFileHost(),
        "apns": FakeAPNs(test_certificate),
        "push": FakePushService(vapid_public_key=vapid_keys[1]),
        "slack": FakeSlack(),
        "webhook": FakeWebhookReceiver(),
        "telegram": FakeTelegram(),
    }
    for fake in fakes.values():
        fake.start()
    fakes["smtp"] = FakeSMTP().start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture(scope="session")
def channel_env(fake_providers, vapid_keys, test_certificate, tmp_path_factory):
    """Environment of a worker whose channels all talk to the fakes."""
    twilio, vonage = fake_providers["twilio"], fake_providers["vonage"]
    return {
        "MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
        "VONAGE_API_KEY": vonage.api_key,
        "VONAGE_API_SECRET": vonage.api_secret,
        "VONAGE_SIGNATURE_SECRET": vonage.signature_secret,
        "VONAGE_SIGNATURE_METHOD": vonage.signature_method,
        "VONAGE_FROM": vonage.from_number,
        "VONAGE_REST_HOST": vonage.host,
        "VONAGE_CA_BUNDLE": str(test_certificate.cert_path),
        "FCM_CREDENTIALS_JSON": json.dumps(fake_providers["fcm"].service_account_info()),
        "FCM_API_BASE": fake_providers["fcm"].url,
        "SLACK_API_BASE": fake_providers["slack_api"].base_url,
        "APNS_AUTH_KEY": fake_providers["apns"].auth_key_pem,
        "APNS_KEY_ID": fake_providers["apns"].key_id,
        "APNS_TEAM_ID": fake_providers["apns"].team_id,
        "APNS_TOPIC": fake_providers["apns"].topic,
        "APNS_USE_SANDBOX": "1",
        "APNS_HOST": f"127.0.0.1:{fake_providers['apns'].port}",
        "APNS_CA_BUNDLE": str(test_certificate.cert_path),
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM_NUMBER": twilio.from_number,
        "TWILIO_API_BASE": twilio.url,
        "VAPID_PRIVATE_KEY": vapid_keys[0],
        "VAPID_PUBLIC_KEY": vapid_keys[1],
        "VAPID_SUBJECT": "mailto:ops@example.com",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "SLACK_WEBHOOK_HOSTS": "127.0.0.1",
        "SLACK_WEBHOOK_SCHEMES": "https,http",  # the fake Slack speaks plain HTTP
        "PUBLIC_BASE_URL": "https://notify.example.com",
        "NOTIFY_SMS_BACKOFF_MAX": "2",
        "NOTIFY_PUSH_BACKOFF_MAX": "2",
        "NOTIFY_WEBHOOK_BACKOFF_MAX": "2",
        "NOTIFY_SLACK_BACKOFF_MAX": "2",
        "TELEGRAM_BOT_TOKEN": fake_providers["telegram"].token,
        "TELEGRAM_API_BASE": fake_providers["telegram"].url,
        "NOTIFY_TELEGRAM_BACKOFF_MAX": "2",
    }


@pytest.fixture
def channel_settings(settings, channel_env, fake_providers):
    """The test process's own settings pointed at the fakes, for calling a channel's send() directly."""
    for name, value in channel_env.items():
        if name.startswith("NOTIFY_"):
            continue
        setattr(settings, name, value.split(",") if name.endswith(("_HOSTS", "_SCHEMES")) else value)
    settings.PROVIDER_TIMEOUT_SECONDS = 1.0
    settings.WEBHOOK_CONNECT_TIMEOUT = 1.0
    settings.WEBHOOK_READ_TIMEOUT = 1.0
    smtp = fake_providers["smtp"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = smtp.host, smtp.port, 2
    return settings


@pytest.fixture
def fakes(fake_providers):
    from tests.support import reset_engine_state

    # Destinations keep their own circuits: one test's faults must not open the next test's.
    reset_engine_state()
    for fake in fake_providers.values():
        fake.reset()
    yield fake_providers
    for fake in fake_providers.values():
        fake.reset()


@pytest.fixture
def beat(worker_env, tmp_path):
    """A real celery beat process for one test (the test database is flushed between tests);
    the clock's tests and the status events' use it."""
    process = BeatProcess(worker_env, log_dir=tmp_path).start()
    yield process
    process.stop()
