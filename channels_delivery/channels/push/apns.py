"""Native push to iOS devices straight through Apple (APNs) with `aioapns`: HTTP/2 over TLS,
token-based (an ES256 JWT from the team's .p8 key), beside Web Push and FCM.

aioapns is asyncio; a Celery prefork worker runs one event loop per send (asyncio.run), so the
HTTP/2 connection lives for one delivery (all of its devices), not across deliveries. Where it
connects is its protocol classes' APNS_SERVER/APNS_PORT (Apple's production or development host);
APNS_HOST names another (the fake in tests) through a subclass. Its own proxy route is not used:
in aioapns 4.0 it hands asyncio's TransportSocket wrapper to create_connection(sock=...), which
fails on Python 3.11.
"""

import asyncio
import ssl

from aioapns import NotificationRequest, PushType
from aioapns.connection import (
    APNsDevelopmentClientProtocol,
    APNsKeyConnectionPool,
    APNsProductionClientProtocol,
)
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from django.conf import settings

from channels_delivery.channels.push.models import MobileDevice
from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.engine.fanout import settle

PRIORITY = {"low": 5, "medium": 5, "high": 10, "urgent": 10}
GONE_REASONS = {"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"}
TRANSIENT_STATUSES = {"429", "500", "503"}


def connection_pool():
    protocol_class = APNsDevelopmentClientProtocol if settings.APNS_USE_SANDBOX else APNsProductionClientProtocol
    if settings.APNS_HOST:
        host, _, port = settings.APNS_HOST.rpartition(":")
        protocol_class = type("APNsConfiguredHost", (protocol_class,), {"APNS_SERVER": host, "APNS_PORT": int(port)})
    pool = APNsKeyConnectionPool(
        key=settings.APNS_AUTH_KEY, key_id=settings.APNS_KEY_ID, team_id=settings.APNS_TEAM_ID,
        topic=settings.APNS_TOPIC, use_sandbox=settings.APNS_USE_SANDBOX,
        ssl_context=ssl.create_default_context(cafile=settings.APNS_CA_BUNDLE or None),
        max_connections=1, max_connection_attempts=1,  # adapters never retry: the task does
    )
    pool.protocol_class = protocol_class
    return pool


class ApplePush(Provider):
    name = "apns"
    channel = "push"

    def is_configured(self):
        return bool(settings.APNS_AUTH_KEY and settings.APNS_KEY_ID and settings.APNS_TEAM_ID and settings.APNS_TOPIC)

    def has_targets(self, message):
        return any(device.get("provider") == "apns" for device in message.devices)

    @staticmethod
    def payload(message):
        aps = {"alert": {"title": message.get("title", ""), "body": message.get("body", "")}, "sound": "default"}
        extra = {key: message[key] for key in ("notification_id", "category", "url", "data") if message.get(key)}
        return {"aps": aps, **extra}

    def send(self, delivery_id, message):
        devices = [device for device in message.devices if device.get("provider") == "apns"]
        results = asyncio.run(self.send_all(devices, message.to_dict()))
        outcomes = [(device["id"], *self.outcome(device, result)) for device, result in zip(devices, results)]
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="200", payload=payload)

    async def send_all(self, devices, message):
        pool = connection_pool()
        results = []
        try:
            for device in devices:
                request = NotificationRequest(
                    device_token=device["token"], message=self.payload(message), push_type=PushType.ALERT,
                    time_to_live=settings.PUSH_TTL_SECONDS, priority=PRIORITY.get(message.get("priority"), 5),
                )
                try:
                    results.append(await asyncio.wait_for(pool.send_notification(request),
                                                          settings.PROVIDER_TIMEOUT_SECONDS))
                except (asyncio.TimeoutError, MaxAttemptsExceeded, ConnectionClosed, OSError) as error:
                    results.append(error)
        finally:
            pool.close()
        return results

    @staticmethod
    def outcome(device, result):
        """The one place APNs answers are sorted; a device Apple no longer knows is reported gone."""
        if isinstance(result, Exception):
            return TransientDeliveryError(f"APNs unreachable ({type(result).__name__})"), {}
        if result.is_successful:
            return None, {"apns_id": result.notification_id}
        detail = f"apns {result.status} {result.description}"
        if result.description in GONE_REASONS:
            MobileDevice.objects.filter(id=device["id"]).deactivate(f"APNs answered {result.description}")
            return PermanentDeliveryError(detail, status_code=result.status), {}
        if result.status in TRANSIENT_STATUSES:
            return TransientDeliveryError(detail, status_code=result.status), {}
        return PermanentDeliveryError(detail, status_code=result.status), {}
