import os

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from notifications.models import ApiClient

from .fakes.sendgrid import FakeSendGrid
from .workers import WorkerProcess

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
        from .rabbitmq import fresh_vhost

        fresh_vhost(TEST_BROKER_URL)
    celery_app.conf.broker_url = TEST_BROKER_URL
    yield TEST_BROKER_URL


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


def database_url():
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, fake_sendgrid, isolated_broker):
    return {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": isolated_broker,
        "REDIS_URL": TEST_REDIS_URL,
        "SENDGRID_API_KEY": fake_sendgrid.api_key,
        "SENDGRID_HOST": fake_sendgrid.url,
        "NOTIFY_EMAIL_BACKOFF_MAX": "2",
        "NOTIFY_INAPP_BACKOFF_MAX": "2",
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
def make_user(django_user_model):
    def make(username, email=None, **extra):
        return django_user_model.objects.create_user(
            username=username, email=email if email is not None else f"{username}@example.com", **extra
        )

    return make


@pytest.fixture
def sender_key(make_user):
    owner = make_user("acme-app", is_staff=False)
    _client, key = ApiClient.issue("Acme shop", owner, scopes=["send", "read"])
    return key


@pytest.fixture
def app_api(sender_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {sender_key}")
    return client


@pytest.fixture
def user_api():
    from rest_framework.authtoken.models import Token

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    return make


# --- clock ---
@pytest.fixture
def beat(worker_env, tmp_path):
    """A real celery beat process for one test (the test database is flushed between tests)."""
    from .workers import BeatProcess

    process = BeatProcess(worker_env, log_dir=tmp_path).start()
    yield process
    process.stop()
