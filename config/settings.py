"""Settings, read once from the environment with defaults for a developer machine."""

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from channels_delivery import registry

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_int(name, default):
    return _env_number(name, default, int, "a whole number")


def env_float(name, default):
    return _env_number(name, default, float, "a number")


def _env_number(name, default, kind, described):
    """A malformed value stops the process with the variable's name, not a traceback from int()."""
    value = os.environ.get(name, default)
    try:
        return kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {described}, not {value!r}") from None


def env_sizes(name, default=""):
    """"name=size,..." as {name: size}, every size a whole number of at least 1."""
    sizes = {}
    for item in env_list(name, default):
        key, _, size = item.partition("=")
        if not key.strip() or not size.strip().isdigit() or int(size) < 1:
            raise ImproperlyConfigured(f"{name} must be name=size pairs (sizes whole numbers of at least 1), "
                                       f"not {item!r}")
        sizes[key.strip()] = int(size)
    return sizes


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
# The fallback key only serves local development (DJANGO_DEBUG=1); with DEBUG off the system check
# in config/checks.py refuses it, and the web and worker processes refuse to start with it.
INSECURE_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", INSECURE_SECRET_KEY)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Production behind TLS (DJANGO_HTTPS=true): cookies only over HTTPS, HSTS, plain HTTP redirected,
# and the scheme taken from the proxy's X-Forwarded-Proto (set DJANGO_PROXY_SSL_HEADER=false when
# no proxy strips a client's own header). Off by default so a developer machine speaks plain HTTP.
HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_PROXY_SSL_HEADER", HTTPS) else None
SECURE_REDIRECT_EXEMPT = [r"^health/"]  # the load balancer's probe speaks plain HTTP inside

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "notifications",
    "notifications.realtime",
    "channels_delivery",
    *(entry.package for entry in registry.CHANNELS),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "notifications.api.errors.BackingServiceErrors",
    "notifications.api.middleware.AddressThrottle",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME", "test_notify")}
# The web tier (config/wsgi.py; the Procfile sets 4) pools its connections with psycopg_pool: at
# most this many per process, and a request waits at most DATABASE_POOL_TIMEOUT seconds for one
# before it is shed with a 503. 0 (Celery workers, tests): one persistent connection per thread instead.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 0)
# Those pooled processes serve short requests: a statement running longer than
# DATABASE_STATEMENT_TIMEOUT seconds is cancelled by Postgres (the request answers 503), so a stuck
# query cannot keep one of the pool's few connections. 0: no limit.
DATABASE_STATEMENT_TIMEOUT = env_float("DATABASE_STATEMENT_TIMEOUT", 30.0)
if DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {"min_size": 1, "max_size": DATABASE_POOL_MAX_SIZE,
                 "timeout": env_float("DATABASE_POOL_TIMEOUT", 2.0)},
    }
    if DATABASE_STATEMENT_TIMEOUT:
        DATABASES["default"]["OPTIONS"]["options"] = " ".join(filter(None, [
            DATABASES["default"]["OPTIONS"].get("options"),
            f"-c statement_timeout={round(DATABASE_STATEMENT_TIMEOUT * 1000)}",
        ]))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` fills it (bin/serve and the Docker image run it); WhiteNoise serves it.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Request bodies beyond this are refused before parsing (a 10 MB body is a 413, not a 500).

# Request bodies beyond this are refused before parsing (a 10 MB body is a 413, not a 500).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
# Stored files (email attachments) go through Django's default storage: the file system here.
MEDIA_ROOT = env_str("MEDIA_ROOT", str(BASE_DIR / "media"))
# Email attachments per send: how many, and their decoded size together (base64 in the request
# adds a third: raise DATA_UPLOAD_MAX_MEMORY_SIZE with it).
NOTIFY_ATTACHMENTS_MAX_COUNT = env_int("NOTIFY_ATTACHMENTS_MAX_COUNT", 5)
NOTIFY_ATTACHMENTS_MAX_BYTES = env_int("NOTIFY_ATTACHMENTS_MAX_BYTES", 512 * 1024)

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# A request that meets an unreachable Postgres, Redis or broker answers 503 with this Retry-After.
NOTIFY_UNAVAILABLE_RETRY_AFTER = env_int("NOTIFY_UNAVAILABLE_RETRY_AFTER", 5)

# --- encryption at rest ---
# Fernet keys (32 url-safe base64 bytes each, `Fernet.generate_key()`), comma-separated: the first
# encrypts, all decrypt. Rotate: add the new key last everywhere, then move it first, run
# `manage.py rotate_encryption_keys`, then drop the old one. Empty: a key derived from
# SECRET_KEY (development only; `manage.py check --deploy` refuses it).
NOTIFY_ENCRYPTION_KEYS = env_list("NOTIFY_ENCRYPTION_KEYS", "")
# How long a process trusts the API clients, categories and templates it has read before reading
# them again (seconds): a key revoked or a category or template changed in another process takes
# effect there within this time (at once in the process that changed it).
NOTIFY_REFERENCE_TTL = env_float("NOTIFY_REFERENCE_TTL", 5.0)

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "notifications.api.auth.ApiKeyAuthentication",
        "notifications.api.end_user_tokens.EndUserTokenAuthentication",
        "notifications.api.auth.UserTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "notifications.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "notifications.api.pagination.PagePagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "notifications.api.schema.ApiAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["notifications.api.throttling.ClientRateThrottle"],
    "EXCEPTION_HANDLER": "notifications.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# The OpenAPI schema and Swagger UI: public only when NOTIFY_PUBLIC_SCHEMA is on; otherwise
# for signed-in staff (the admin session) and operators.
NOTIFY_PUBLIC_SCHEMA = env_bool("NOTIFY_PUBLIC_SCHEMA", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Notification delivery service",
    "DESCRIPTION": "Send notifications by email, SMS, Web Push, webhook, Slack and in-app.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN: they work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": (
        ["rest_framework.permissions.AllowAny"] if NOTIFY_PUBLIC_SCHEMA
        else ["notifications.api.permissions.IsOperator"]
    ),
    "SERVE_AUTHENTICATION": None,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "NotificationStatusEnum": "notifications.models.NotificationStatus",
        "DeliveryStatusEnum": "notifications.models.DeliveryStatus",
        "BroadcastStatusEnum": "notifications.models.Broadcast.Status",
        "ChannelEnum": "notifications.models.Channel",
    },
}
# Dispatch coalescing (notifications/planning/dispatch.py): the API's sends wait in a Redis list
# per priority lane and one drain task plans what waits together. A lane's drain counts as awake
# for NOTIFY_DISPATCH_AWAKE_TTL seconds after it last looked (so one that died is replaced by the
# next send after that long), and hands over to a fresh task after NOTIFY_DISPATCH_DRAIN_SECONDS.
NOTIFY_DISPATCH_COALESCE = env_bool("NOTIFY_DISPATCH_COALESCE", True)
NOTIFY_DISPATCH_AWAKE_TTL = env_int("NOTIFY_DISPATCH_AWAKE_TTL", 10)
NOTIFY_DISPATCH_DRAIN_SECONDS = env_float("NOTIFY_DISPATCH_DRAIN_SECONDS", 10.0)
# How long a drain that found its list empty waits for the next send before letting the lane sleep.
NOTIFY_DISPATCH_LINGER = env_float("NOTIFY_DISPATCH_LINGER", 0.2)
# How long a drain that took less than a full batch waits for more before planning it (seconds):
# each batch's first send waits this long, and planning costs mostly per batch. At a steady 100
# sends/s on 2 cores, 0.02 took API -> WebSocket from p50 about 1.1 s (0: batches of one or two,
# the workers at saturation) to 0.12-0.15 s (bench.realtime latency, README "Benchmarks").
NOTIFY_DISPATCH_GATHER = env_float("NOTIFY_DISPATCH_GATHER", 0.02)
# Delivery chunks (channels_delivery/engine/chunks.py): first tries of one channel per message
# (1 sends each delivery as its own message), and the threads per worker process that make a
# chunk's provider calls side by side.
NOTIFY_DELIVERY_CHUNK_SIZE = env_int("NOTIFY_DELIVERY_CHUNK_SIZE", 100)
# Per channel, "channel=size,...", over NOTIFY_DELIVERY_CHUNK_SIZE. In-app sends make no provider
# call, so a chunk's cost is mostly per message (claiming, recording, publishing): 500, a whole
# dispatch batch, used 0.82x the in-app worker's CPU of 100 in a 10,000-user broadcast.
NOTIFY_DELIVERY_CHUNK_SIZES = env_sizes("NOTIFY_DELIVERY_CHUNK_SIZES", "inapp=500")
NOTIFY_CHUNK_THREADS = env_int("NOTIFY_CHUNK_THREADS", 16)
# A chunk logs a line per delivery sent up to this many at once; above, one line per status,
# channel, provider and attempt number with the chunk's claim token (a broadcast's 10,000 in-app
# lines cost a quarter of the in-app worker's CPU). Failures and retries always log one each.
NOTIFY_LOG_EACH_SENT_UP_TO = env_int("NOTIFY_LOG_EACH_SENT_UP_TO", 50)
# Every this many seconds a chunk records what has answered since (a slow call holds up only itself).
NOTIFY_CHUNK_RECORD_WAIT = env_float("NOTIFY_CHUNK_RECORD_WAIT", 1.0)
# Broadcast fan-out: recipients per chunk task (one bulk insert and one dispatch task each).
NOTIFY_BROADCAST_CHUNK_SIZE = env_int("NOTIFY_BROADCAST_CHUNK_SIZE", 1000)
# A broadcast still fanning out after this many seconds is planned again (its done chunks skipped).
NOTIFY_BROADCAST_RESUME_AFTER = env_int("NOTIFY_BROADCAST_RESUME_AFTER", 600)
# A send's `data` and `context` are copied into every recipient's notification and delivery:
# each is capped (bytes of its JSON, and nesting depth), a 400 with field errors beyond.
NOTIFY_MAX_DATA_BYTES = env_int("NOTIFY_MAX_DATA_BYTES", 8 * 1024)
NOTIFY_MAX_CONTEXT_BYTES = env_int("NOTIFY_MAX_CONTEXT_BYTES", 16 * 1024)
NOTIFY_MAX_JSON_DEPTH = env_int("NOTIFY_MAX_JSON_DEPTH", 16)
# What one API client (all keys of one owner) may reach: recipients per minute, direct sends and
# broadcast audiences alike; over it a send is a 429 with Retry-After.
NOTIFY_CLIENT_RECIPIENTS_PER_MINUTE = env_int("NOTIFY_CLIENT_RECIPIENTS_PER_MINUTE", 200_000)
# Throttling per API client and per user (DRF rate syntax: N/second|minute|hour|day).
# Unauthenticated paths are counted per client address, and so are failed logins (a bad API key
# or token): past that rate an address is refused before its credentials are checked. An empty
# rate switches that throttle off.
NOTIFY_THROTTLE_RATES = {
    "client": env_str("NOTIFY_THROTTLE_CLIENT_RATE", "6000/minute"),
    "user": env_str("NOTIFY_THROTTLE_USER_RATE", "600/minute"),
    "unsubscribe": env_str("NOTIFY_THROTTLE_UNSUBSCRIBE_RATE", "60/minute"),
    "callback": env_str("NOTIFY_THROTTLE_CALLBACK_RATE", "3000/minute"),
    "login_failures": env_str("NOTIFY_THROTTLE_LOGIN_FAILURE_RATE", "20/minute"),
}
NOTIFY_THROTTLE_ADDRESS_PATHS = {"/unsubscribe/": "unsubscribe", "/callbacks/": "callback"}
# Throttle counters live in Redis so every web process shares them.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("THROTTLE_REDIS_URL", REDIS_URL),
        "KEY_PREFIX": "throttle",
    },
}

# --- Celery (read by config/celery.py through the CELERY_ namespace) --------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Countdowns (retry backoff, rate-limit requeues) stay far below this; longer waits live in Postgres.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker killed mid-task leaves its message on the broker to run again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With late acks a running task's message counts against the prefetch, so 1 reserves nothing
# beyond what runs: an urgent message waits for one running chunk, not for a queue of chunks of
# 100 deliveries each that a larger prefetch would have taken from the broker ahead of it.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
# Task events cost every message a second publish; Flower switches them on while it watches.
# Celery's Django fixup closes a worker's database connection after every task unless this is
# set (CONN_MAX_AGE does not apply there): keep it for this many tasks, as a pool would.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", False)
# Reconnect to the broker forever after a Redis or RabbitMQ restart instead of exiting.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# RabbitMQ (CELERY_BROKER_URL=amqp://...): queues are classic and durable (kombu's default). A
# message with a countdown stays unacked on the worker until it runs, and RabbitMQ's
# consumer_timeout (30 min by default) closes the channel of an unacked delivery older than that:
# retry countdowns are capped by NOTIFY_<CHANNEL>_BACKOFF_MAX (600 s) and tasks by
# CELERY_TASK_TIME_LIMIT, both far below it; longer waits live in Postgres (scheduled_at).
# What a task prints (the console email backend's messages) is logged at INFO, not as a WARNING.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# --- Channels (the list is channels_delivery/registry.py) and their providers -----------------
NOTIFY_CHANNELS = registry.NAMES
NOTIFY_DEFAULT_CHANNELS = env_list("NOTIFY_DEFAULT_CHANNELS", "inapp,email")
# Categories created on migrate; "critical" ones cannot be switched off and ignore quiet hours.
NOTIFY_CATEGORIES = {
    "general": {"name": "General", "critical": False},
    "orders": {"name": "Orders", "critical": False},
    "messages": {"name": "Messages", "critical": False},
    "system": {"name": "System", "critical": True},
}
# Per channel: max_retries and the longest backoff in seconds (kept below the visibility timeout);
# the registry's defaults, overridden by NOTIFY_<CHANNEL>_MAX_RETRIES and _BACKOFF_MAX.
NOTIFY_RETRY = {
    entry.name: {
        "max_retries": env_int(f"NOTIFY_{entry.name.upper()}_MAX_RETRIES", entry.max_retries),
        "backoff_max": env_int(f"NOTIFY_{entry.name.upper()}_BACKOFF_MAX", entry.backoff_max),
    }
    for entry in registry.CHANNELS
}
PROVIDER_TIMEOUT_SECONDS = env_float("PROVIDER_TIMEOUT_SECONDS", 10.0)

# Email. With no SendGrid key, email leaves through Django's SMTP backend; with no SMTP host
# either, it is printed by the email worker (the console backend) so a first run shows it.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "notifications@example.com")
SENDGRID_API_KEY = env_str("SENDGRID_API_KEY", "")
SENDGRID_HOST = env_str("SENDGRID_HOST", "https://api.sendgrid.com")
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
# SendGrid's signed event webhook (Twilio's status callbacks are verified with TWILIO_AUTH_TOKEN).
SENDGRID_WEBHOOK_PUBLIC_KEY = env_str("SENDGRID_WEBHOOK_PUBLIC_KEY", "")

# SMS through Twilio; TWILIO_API_BASE points the SDK at a proxy (or the fake provider in tests).
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_API_BASE = env_str("TWILIO_API_BASE", "https://api.twilio.com")
# SMS through Vonage's SMS API, tried after Twilio: key and secret (HTTP Basic); the signature
# secret and method (as set in Vonage's dashboard) verify its signed delivery receipts.
# VONAGE_REST_HOST is host[:port] (the SDK always speaks https); VONAGE_CA_BUNDLE trusts a proxy's CA.
VONAGE_API_KEY = env_str("VONAGE_API_KEY", "")
VONAGE_API_SECRET = env_str("VONAGE_API_SECRET", "")
VONAGE_SIGNATURE_SECRET = env_str("VONAGE_SIGNATURE_SECRET", "")
VONAGE_SIGNATURE_METHOD = env_str("VONAGE_SIGNATURE_METHOD", "sha256")
VONAGE_FROM = env_str("VONAGE_FROM", "")
VONAGE_REST_HOST = env_str("VONAGE_REST_HOST", "rest.nexmo.com")
VONAGE_CA_BUNDLE = env_str("VONAGE_CA_BUNDLE", "")
# Region for stored numbers written without +country code ("US", "DE"); empty: E.164 only.
SMS_DEFAULT_REGION = env_str("SMS_DEFAULT_REGION", "")
# Web Push: the VAPID private key as base64url (raw 32 bytes or DER), its public key for browsers.
VAPID_PRIVATE_KEY = env_str("VAPID_PRIVATE_KEY", "")
VAPID_PUBLIC_KEY = env_str("VAPID_PUBLIC_KEY", "")
VAPID_SUBJECT = env_str("VAPID_SUBJECT", "mailto:notifications@example.com")
PUSH_TTL_SECONDS = env_int("PUSH_TTL_SECONDS", 86400)
# Native mobile push through FCM HTTP v1: a service account's JSON key (its token_uri is where
# google-auth gets OAuth2 tokens), the project (default: the key's), and the API's base URL.
FCM_CREDENTIALS_JSON = env_str("FCM_CREDENTIALS_JSON", "")
FCM_PROJECT_ID = env_str("FCM_PROJECT_ID", "")
FCM_API_BASE = env_str("FCM_API_BASE", "https://fcm.googleapis.com").rstrip("/")
# Native push to iOS straight through APNs (token auth): the .p8 key's PEM, its key id, the team
# id and the app's bundle id (topic); the sandbox for development builds. APNS_HOST (host:port)
# replaces Apple's host (the fake in tests), APNS_CA_BUNDLE trusts another CA there.
APNS_AUTH_KEY = env_str("APNS_AUTH_KEY", "")
APNS_KEY_ID = env_str("APNS_KEY_ID", "")
APNS_TEAM_ID = env_str("APNS_TEAM_ID", "")
APNS_TOPIC = env_str("APNS_TOPIC", "")
APNS_USE_SANDBOX = env_bool("APNS_USE_SANDBOX", False)
APNS_HOST = env_str("APNS_HOST", "")
APNS_CA_BUNDLE = env_str("APNS_CA_BUNDLE", "")
# Webhooks (and push endpoints) may not reach private, loopback or link-local addresses unless
# the host name or a network (CIDR) is listed here.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", "")
WEBHOOK_CONNECT_TIMEOUT = env_float("WEBHOOK_CONNECT_TIMEOUT", 3.0)
# Standard Webhooks recommends giving receivers 15 to 30 seconds.
WEBHOOK_READ_TIMEOUT = env_float("WEBHOOK_READ_TIMEOUT", 15.0)
# Push subscriptions, webhook endpoints and Slack webhooks a user may register, each.
NOTIFY_MAX_CONTACT_POINTS_PER_USER = env_int("NOTIFY_MAX_CONTACT_POINTS_PER_USER", 10)
# Every call to a user-supplied URL (webhook endpoints, push services) ends after this many
# seconds in all (connect, headers, body), and reads at most this many bytes of the answer.
OUTBOUND_DEADLINE_SECONDS = env_float("OUTBOUND_DEADLINE_SECONDS", 20.0)
OUTBOUND_RESPONSE_MAX_BYTES = env_int("OUTBOUND_RESPONSE_MAX_BYTES", 64 * 1024)
# Telegram: the bot's token from @BotFather; TELEGRAM_API_BASE points at a proxy (or the fake in tests).
TELEGRAM_BOT_TOKEN = env_str("TELEGRAM_BOT_TOKEN", "")
TELEGRAM_API_BASE = env_str("TELEGRAM_API_BASE", "https://api.telegram.org")
# Slack webhook URLs are only called on these hosts.
SLACK_WEBHOOK_HOSTS = [host.lower() for host in env_list("SLACK_WEBHOOK_HOSTS", "hooks.slack.com")]
# The URL is the credential: only HTTPS carries it (tests add http for the local fake Slack).
SLACK_WEBHOOK_SCHEMES = env_list("SLACK_WEBHOOK_SCHEMES", "https")
# Slack Web API (bot tokens are per workspace, stored with the workspace).
SLACK_API_BASE = env_str("SLACK_API_BASE", "https://slack.com/api/")

# --- Delivery engine: retries, fallback routes, circuit breaker, rate limits ------------------
def parse_rate_limits(text):
    """`sendgrid=100:200,twilio=10` -> {"sendgrid": (100.0 per second, burst 200), "twilio": (10.0, 10)}."""
    limits = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        provider, _, spec = item.partition("=")
        rate, _, burst = spec.partition(":")
        limits[provider.strip()] = (float(rate), int(burst or max(1, float(rate))))
    return limits


# Fallback chains. A plan is a list of routes run side by side, each a chain of channels tried in
# order until one gets through. Looked up by category, then priority, then the default; a send
# that names its channels overrides this. A channel the user has no contact point for is skipped.
NOTIFY_ROUTES = {
    "categories": {},
    "priorities": {
        "urgent": [["inapp"], ["push", "sms", "email"]],
        "high": [["inapp"], ["push", "email"]],
    },
    "default": [[channel] for channel in NOTIFY_DEFAULT_CHANNELS],
}
if os.environ.get("NOTIFY_ROUTES"):
    NOTIFY_ROUTES = {**NOTIFY_ROUTES, **json.loads(os.environ["NOTIFY_ROUTES"])}
# Retry delay before retry n (0-based): factor * 2**n seconds, capped at the channel's backoff_max,
# with "equal jitter" (a random half) so workers do not retry in lockstep; a provider's
# Retry-After wins when longer. Waits beyond NOTIFY_MAX_COUNTDOWN are parked in Postgres
# (Delivery.next_retry_at, status retrying) for the reaper instead of a broker countdown.
NOTIFY_RETRY_BACKOFF = env_float("NOTIFY_RETRY_BACKOFF", 2.0)
NOTIFY_RETRY_JITTER = env_bool("NOTIFY_RETRY_JITTER", True)
NOTIFY_MAX_COUNTDOWN = env_int(
    "NOTIFY_MAX_COUNTDOWN", CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 4
)
# A dispatch or delivery message whose worker died this many times while running it (killed for
# memory, segfault) is parked instead of handed to the next worker (channels_delivery/poison.py).
NOTIFY_POISON_MAX_DEATHS = env_int("NOTIFY_POISON_MAX_DEATHS", 3)
# Named retry policies (channels_delivery/backoff.py): `shape` exponential (factor * 2**n),
# linear (factor * (n + 1)), fibonacci (factor * F(n + 1)) or fixed (`delays`, the last repeats);
# `max_attempts` counts the first try; `cap` bounds one wait; `jitter` is the share of a wait taken
# off at random (0 = exact). NOTIFY_RETRY_POLICIES (JSON) adds policies or replaces these.
NOTIFY_RETRY_POLICIES = {
    "exponential": {"shape": "exponential", "factor": 2, "max_attempts": 6, "cap": 600, "jitter": 0.5},
    "linear": {"shape": "linear", "factor": 30, "max_attempts": 6, "cap": 600, "jitter": 0.2},
    "fibonacci": {"shape": "fibonacci", "factor": 5, "max_attempts": 8, "cap": 900, "jitter": 0.2},
    "fixed": {"shape": "fixed", "delays": [1, 5, 30, 300], "max_attempts": 5, "cap": 300, "jitter": 0},
}
if os.environ.get("NOTIFY_RETRY_POLICIES"):
    NOTIFY_RETRY_POLICIES = {**NOTIFY_RETRY_POLICIES, **json.loads(os.environ["NOTIFY_RETRY_POLICIES"])}
# Which policy a delivery retries under: its category's (`orders:fixed,...`), else its priority's
# (`urgent:fixed,...`), else its channel's (NOTIFY_<CHANNEL>_RETRY_POLICY); a channel naming none
# keeps exponential backoff with its NOTIFY_<CHANNEL>_MAX_RETRIES and _BACKOFF_MAX above.
NOTIFY_CHANNEL_RETRY_POLICY = {
    channel: env_str(f"NOTIFY_{channel.upper()}_RETRY_POLICY", "") for channel in NOTIFY_CHANNELS
}
NOTIFY_CATEGORY_RETRY_POLICY = dict(
    pair.split(":", 1) for pair in env_list("NOTIFY_CATEGORY_RETRY_POLICY", "") if ":" in pair
)
NOTIFY_PRIORITY_RETRY_POLICY = dict(
    pair.split(":", 1) for pair in env_list("NOTIFY_PRIORITY_RETRY_POLICY", "") if ":" in pair
)
# Status events to API clients' status webhooks (channels_delivery/status_events.py): their retry
# policy, and when an event still `queued`/`sending` is taken for lost (above the webhook timeouts)
# or a `retrying` one past next_retry_at for a lost retry message; events claimed per beat tick.
NOTIFY_STATUS_EVENT_RETRY_POLICY = env_str("NOTIFY_STATUS_EVENT_RETRY_POLICY", "exponential")
NOTIFY_STATUS_EVENT_STUCK_AFTER = env_float("NOTIFY_STATUS_EVENT_STUCK_AFTER", 300.0)
NOTIFY_STATUS_EVENT_GRACE = env_float("NOTIFY_STATUS_EVENT_GRACE", 30.0)
NOTIFY_STATUS_EVENT_BATCH = env_int("NOTIFY_STATUS_EVENT_BATCH", 500)
# A delivery task that cannot reach Postgres re-queues its message after this many seconds.
NOTIFY_DATABASE_RETRY_SECONDS = env_float("NOTIFY_DATABASE_RETRY_SECONDS", 5.0)
# Circuit breaker per provider (state in Redis at REDIS_URL, shared by every worker): it opens
# after CIRCUIT_FAILURES transient failures within CIRCUIT_WINDOW seconds, stays open
# CIRCUIT_OPEN_SECONDS, then lets one probe call through (owned for CIRCUIT_PROBE_SECONDS).
NOTIFY_CIRCUIT_FAILURES = env_int("NOTIFY_CIRCUIT_FAILURES", 5)
NOTIFY_CIRCUIT_WINDOW = env_float("NOTIFY_CIRCUIT_WINDOW", 60.0)
NOTIFY_CIRCUIT_OPEN_SECONDS = env_float("NOTIFY_CIRCUIT_OPEN_SECONDS", 30.0)
NOTIFY_CIRCUIT_PROBE_SECONDS = env_float("NOTIFY_CIRCUIT_PROBE_SECONDS", 20.0)
# Global token bucket per provider, in Redis: "provider=per_second[:burst],...". Unlisted: unlimited.
NOTIFY_RATE_LIMITS = parse_rate_limits(env_str("NOTIFY_RATE_LIMITS", ""))

# --- Planning: preferences and templates ------------------------------------------------------
# System defaults, below users' and groups' own switches: channels off unless switched on, for
# every category or (as `category:channel` pairs) for one category.
NOTIFY_CHANNELS_OFF_BY_DEFAULT = env_list("NOTIFY_CHANNELS_OFF_BY_DEFAULT", "")
NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT = {}
for _pair in env_list("NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT", ""):
    _category, _, _channel = _pair.partition(":")
    NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT.setdefault(_category.strip(), []).append(_channel.strip())
# Unsubscribe links stop working after this many seconds (and when the address they went to changes).
NOTIFY_UNSUBSCRIBE_MAX_AGE = env_int("NOTIFY_UNSUBSCRIBE_MAX_AGE", 60 * 24 * 3600)
# The template sandbox's budget per render: characters any one value or part may reach, loop
# iterations, seconds (dispatch and previews alike), and how deep loops and tags may nest.
NOTIFY_TEMPLATE_MAX_OUTPUT = env_int("NOTIFY_TEMPLATE_MAX_OUTPUT", 100_000)
NOTIFY_TEMPLATE_MAX_ITERATIONS = env_int("NOTIFY_TEMPLATE_MAX_ITERATIONS", 10_000)
NOTIFY_TEMPLATE_RENDER_SECONDS = env_float("NOTIFY_TEMPLATE_RENDER_SECONDS", 2.0)
NOTIFY_TEMPLATE_MAX_LOOP_NESTING = env_int("NOTIFY_TEMPLATE_MAX_LOOP_NESTING", 2)
NOTIFY_TEMPLATE_MAX_NESTING = env_int("NOTIFY_TEMPLATE_MAX_NESTING", 8)
# Templates fall back from the notification's or user's locale to its language, then to this.
NOTIFY_DEFAULT_LOCALE = env_str("NOTIFY_DEFAULT_LOCALE", "en")

# --- Clock: scheduled sends, digests, escalation, reaper, retention ---------------------------
# Scheduled sends, digests, escalation, clean-up and the reaper: all driven by one celery beat.
# Code declares the periodic tasks (notifications/schedules.py); sync_schedules writes them to
# django-celery-beat's tables, where operators may edit or disable them in the admin.
CELERY_BEAT_SCHEDULER = "notifications.clock.beat:SingleBeatScheduler"
# Beat messages that sat in the broker longer than this are dropped (the next tick sends a fresh one).
NOTIFY_BEAT_TASK_EXPIRES = env_int("NOTIFY_BEAT_TASK_EXPIRES", 10)
# A second beat refuses to start while the first one holds this Redis lock (refreshed every tick).
NOTIFY_BEAT_LOCK_TTL = env_int("NOTIFY_BEAT_LOCK_TTL", 30)
# A starting beat waits this long for a crashed predecessor's lock to expire before it gives up.
NOTIFY_BEAT_LOCK_WAIT = env_int("NOTIFY_BEAT_LOCK_WAIT", NOTIFY_BEAT_LOCK_TTL + 5)
# Seconds in one "minute" of Category.digest_window_minutes and escalate_after_minutes (tests shrink it).
NOTIFY_CLOCK_MINUTE_SECONDS = env_float("NOTIFY_CLOCK_MINUTE_SECONDS", 60.0)
NOTIFY_SCHEDULED_CHUNK = env_int("NOTIFY_SCHEDULED_CHUNK", 500)
# Reaper: a delivery queued or sending this long (seconds), or retrying this long past its
# next_retry_at (a lost retry message, or a wait parked in Postgres), is re-enqueued. The sending
# threshold stays above CELERY_TASK_TIME_LIMIT so a live task is never taken over.
NOTIFY_REAPER_QUEUED_AFTER = env_int("NOTIFY_REAPER_QUEUED_AFTER", 300)
NOTIFY_REAPER_SENDING_AFTER = max(env_int("NOTIFY_REAPER_SENDING_AFTER", 300), CELERY_TASK_TIME_LIMIT + 30)
NOTIFY_REAPER_RETRYING_AFTER = env_int("NOTIFY_REAPER_RETRYING_AFTER", 30)
NOTIFY_REAPER_PENDING_AFTER = env_int("NOTIFY_REAPER_PENDING_AFTER", 300)
# A delivery re-enqueued this many times in a row without a recorded attempt in between (or a
# notification re-dispatched this many times) is failed with the reason instead.
NOTIFY_REAPER_MAX_REQUEUES = env_int("NOTIFY_REAPER_MAX_REQUEUES", 5)
# Retention in days: delivery attempts, read in-app notifications, expired notifications.
NOTIFY_RETENTION_ATTEMPTS_DAYS = env_int("NOTIFY_RETENTION_ATTEMPTS_DAYS", 30)
NOTIFY_RETENTION_READ_DAYS = env_int("NOTIFY_RETENTION_READ_DAYS", 90)
NOTIFY_RETENTION_EXPIRED_DAYS = env_int("NOTIFY_RETENTION_EXPIRED_DAYS", 7)
NOTIFY_CLEANUP_BATCH = env_int("NOTIFY_CLEANUP_BATCH", 1000)
# The daily dead-letter summary goes to these addresses, or to active staff users if empty.
OPERATOR_EMAILS = env_list("OPERATOR_EMAILS", "")
# --- Realtime: end-user tokens, the WebSocket tier ------------------------------------------
# End-user tokens (JWT) that apps sign for their users: notifications/api/end_user_tokens.py.
NOTIFY_END_USER_TOKEN_AUDIENCE = env_str("NOTIFY_END_USER_TOKEN_AUDIENCE", "notifications")
# `exp` may lie at most this far ahead (seconds): tokens are short-lived.
NOTIFY_END_USER_TOKEN_MAX_LIFETIME = env_int("NOTIFY_END_USER_TOKEN_MAX_LIFETIME", 3600)
# Clock skew allowed between the app that signs and this service (seconds).
NOTIFY_END_USER_TOKEN_LEEWAY = env_int("NOTIFY_END_USER_TOKEN_LEEWAY", 30)
# The WebSocket channel layer in Redis, shared by every ASGI process and worker: each ASGI
# process's relay is in one group and gets pushes in batches of NOTIFY_WS_RELAY_BATCH users
# (notifications/realtime/relay.py). A connection's backlog (in its ASGI process's memory) holds at
# most NOTIFY_WS_BACKLOG events: a slow client loses the oldest overflow, never holding up the
# others (the inbox in Postgres still has them). channels-redis queues every message for one ASGI
# process in one Redis list before that process reads them; NOTIFY_WS_PROCESS_BACKLOG bounds it and
# NOTIFY_WS_BACKLOG_EXPIRY drops what waited longer (seconds). A relay renews its membership every
# NOTIFY_WS_RELAY_RENEW seconds (so it is back soon after Redis lost it), and a killed process
# drops out after NOTIFY_WS_GROUP_EXPIRY seconds.
NOTIFY_WS_BACKLOG = env_int("NOTIFY_WS_BACKLOG", 100)
NOTIFY_WS_RELAY_BATCH = env_int("NOTIFY_WS_RELAY_BATCH", 200)
NOTIFY_WS_RELAY_RENEW = env_float("NOTIFY_WS_RELAY_RENEW", 5)
NOTIFY_WS_GROUP_EXPIRY = env_int("NOTIFY_WS_GROUP_EXPIRY", 60)
CHANNEL_LAYER_URL = env_str("CHANNEL_LAYER_URL", REDIS_URL)
# redis-py 8 reads with a 5 s socket timeout by default, which ends channels-redis' 5 s blocking
# BZPOPMIN in a TimeoutError: reads may take longer than the block (a dead Redis still times out).
CHANNEL_LAYER_HOST = {"address": CHANNEL_LAYER_URL, "socket_timeout": 15, "socket_connect_timeout": 5}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [CHANNEL_LAYER_HOST],
            "capacity": NOTIFY_WS_BACKLOG,
            "channel_capacity": {"specific.*": env_int("NOTIFY_WS_PROCESS_BACKLOG", 1000)},
            "expiry": env_int("NOTIFY_WS_BACKLOG_EXPIRY", 60),
            "group_expiry": NOTIFY_WS_GROUP_EXPIRY,
        },
    }
}
# Where browsers open the WebSocket: empty for the page's own origin (a proxy routes /ws/ to the
# realtime process), else e.g. ws://127.0.0.1:8001/ws/notifications/ when it listens on its own port.
NOTIFY_WS_PUBLIC_URL = env_str("NOTIFY_WS_PUBLIC_URL", "")
# Unread notifications a client gets on connect (what it missed) reach back this many days.
NOTIFY_INBOX_MISSED_DAYS = env_int("NOTIFY_INBOX_MISSED_DAYS", 7)
# At most this many notifications in one answer to a connect or requestMissedNotifications.
NOTIFY_WS_MISSED_LIMIT = env_int("NOTIFY_WS_MISSED_LIMIT", 200)
# A connection sending more than NOTIFY_WS_MAX_BAD_MESSAGES bad messages, or more than
# NOTIFY_WS_MAX_MESSAGES messages in all, within NOTIFY_WS_FLOOD_WINDOW seconds is closed (1008).
NOTIFY_WS_MAX_BAD_MESSAGES = env_int("NOTIFY_WS_MAX_BAD_MESSAGES", 10)
NOTIFY_WS_MAX_MESSAGES = env_int("NOTIFY_WS_MAX_MESSAGES", 120)
NOTIFY_WS_FLOOD_WINDOW = env_float("NOTIFY_WS_FLOOD_WINDOW", 10.0)
NOTIFY_WS_MAX_MESSAGE_BYTES = env_int("NOTIFY_WS_MAX_MESSAGE_BYTES", 64 * 1024)
# Handshakes one ASGI process holds waiting for their token check; more are refused at once (HTTP
# 403 to the handshake) and retried by the client with backoff. Checks run in batches (a few
# queries for hundreds), so a process clears thousands a second: the bound is for a storm it could
# not clear within its clients' handshake timeouts. A refusal costs the client a backoff, which
# after a restart cost more than queueing (README, Benchmarks).
NOTIFY_WS_MAX_PENDING_HANDSHAKES = env_int("NOTIFY_WS_MAX_PENDING_HANDSHAKES", 10000)
# The realtime process collects its young objects every NOTIFY_WS_GC_THRESHOLD allocations (Python's
# default is 700; config/asgi.py says why).
NOTIFY_WS_GC_THRESHOLD = env_int("NOTIFY_WS_GC_THRESHOLD", 200000)
# The same for Celery workers (config/celery.py): 0 keeps Python's default and nothing is frozen.
NOTIFY_WORKER_GC_THRESHOLD = env_int("NOTIFY_WORKER_GC_THRESHOLD", 50000)

# --- ops: health, metrics, logs, audit, Flower ---
# "development" (bin/serve sets it) keeps human-readable logs and lets Flower run without a
# password on loopback; anything else is a deployment.
NOTIFY_ENVIRONMENT = env_str("NOTIFY_ENVIRONMENT", "development" if DEBUG else "production")
IS_DEVELOPMENT = NOTIFY_ENVIRONMENT == "development"
# Logs: "json" (one JSON object a line, for a log shipper) or "text" (for people).
LOG_FORMAT = env_str("LOG_FORMAT", "text" if IS_DEVELOPMENT else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# INFO is what a person watching wants: one line per notification accepted and per delivery
# sent, failed, retried or fallen back, and what a clock task really did. Celery's own line per
# task received and succeeded, and beat's per message sent (several a second), are routine: they
# log at CELERY_ROUTINE_LOG_LEVEL (INFO shows them again).
CELERY_ROUTINE_LOG_LEVEL = env_str("CELERY_ROUTINE_LOG_LEVEL", "WARNING").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "notifications.ops.logs.ContextFilter"},
        "redact": {"()": "notifications.ops.logs.RedactSecrets"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context", "redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        name: {"level": CELERY_ROUTINE_LOG_LEVEL}
        for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")
    },
}
# The realtime process: uvicorn and websockets log INFO lines for every WebSocket (two as it opens,
# one when websockets reads its end); off unless this is set (notifications/realtime/protocol.py).
NOTIFY_WS_LOG_CONNECTIONS = env_bool("NOTIFY_WS_LOG_CONNECTIONS", False)
# Health: how long /health/ready waits for each queue's workers to answer a ping, and how old
# beat's heartbeat (its Redis lock, refreshed every tick) may be.
NOTIFY_HEALTH_WORKER_TIMEOUT = env_float("NOTIFY_HEALTH_WORKER_TIMEOUT", 1.0)
NOTIFY_HEALTH_CHECK_BEAT = env_bool("NOTIFY_HEALTH_CHECK_BEAT", True)
# Queues /health/ready expects a worker on (default: every queue).
NOTIFY_HEALTH_QUEUES = env_list("NOTIFY_HEALTH_QUEUES", "")
# /metrics: a bearer token, or client addresses/networks allowed without one. Neither set: only
# loopback may scrape.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# prometheus_client's multiprocess mode: every web and worker process on the machine writes its
# counters here and /metrics sums them. Must be set in the environment before the processes
# start (Procfile, compose); empty: single-process metrics (only the web process's own).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
# A worker's main process serves its machine's metrics on this port (0: off), for machines
# without a web process; bound to loopback unless NOTIFY_WORKER_METRICS_ADDRESS says otherwise.
NOTIFY_WORKER_METRICS_PORT = env_int("NOTIFY_WORKER_METRICS_PORT", 0)
NOTIFY_WORKER_METRICS_ADDRESS = env_str("NOTIFY_WORKER_METRICS_ADDRESS", "127.0.0.1")
# Audit trail retention, purged by beat with the rest.
NOTIFY_RETENTION_AUDIT_DAYS = env_int("NOTIFY_RETENTION_AUDIT_DAYS", 365)
# The admin's list pages show an estimated total (Postgres' planner statistics) above this many rows.
ADMIN_EXACT_COUNT_LIMIT = env_int("ADMIN_EXACT_COUNT_LIMIT", 10000)
MIDDLEWARE.insert(0, "notifications.ops.correlation.RequestIdMiddleware")
MIDDLEWARE.insert(1, "notifications.ops.metrics.RequestMetricsMiddleware")
# Flower (python -m notifications.ops.flower): basic auth "user:password[,user:password]" is
# required outside development; Flower reads FLOWER_BASIC_AUTH from the environment itself.
FLOWER_BASIC_AUTH = env_str("FLOWER_BASIC_AUTH", "")
FLOWER_ADDRESS = env_str("FLOWER_ADDRESS", "127.0.0.1")
FLOWER_PORT = env_int("FLOWER_PORT", 5555)
