"""Where a channel reaches a user: the address part of a message, or None when there is none.

Webhook endpoints and Slack webhooks are named by id only: their URLs and signing secrets are
credentials, read by the channel from their rows at send time and never copied into a Delivery.
Push subscriptions carry their endpoint and public keys, which the encryption needs and which
are not secret.

Each lookup costs one query per user, or none when the caller loaded the user with
select_related("profile") and prefetch_related(*CONTACT_POINT_PREFETCH), as a large fan-out should.
"""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from channels_delivery.phone import InvalidPhoneNumber, normalise_e164

from .models import Channel, MobileDevice, PushSubscription, SlackBotTarget, SlackWebhook, WebhookEndpoint

CONTACT_POINT_PREFETCH = ["push_subscriptions", "mobile_devices", "webhook_endpoints", "slack_webhooks",
                          "slack_bot_targets"]


def email_address(user):
    return {"to": user.email} if user.email else None


def phone_number(user):
    try:
        phone = user.profile.phone
    except ObjectDoesNotExist:
        return None
    if not phone:
        return None
    try:
        return {"to": normalise_e164(phone, settings.SMS_DEFAULT_REGION or None)}
    except InvalidPhoneNumber:
        return None


def active(related_manager):
    # Filtering in Python lets a caller's prefetch_related() answer without another query.
    return sorted((row for row in related_manager.all() if row.active), key=lambda row: row.id)


def push_subscriptions(user):
    """Browsers (Web Push subscriptions) and phones (FCM or APNs device tokens, not secret: the
    app sends them to us) of the user; the push channel reaches them side by side."""
    address = {}
    subscriptions = [
        {"id": sub.id, "endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        for sub in active(user.push_subscriptions)
    ]
    if subscriptions:
        address["subscriptions"] = subscriptions
    devices = [{"id": device.id, "token": device.token, "provider": device.provider}
               for device in active(user.mobile_devices)]
    if devices:
        address["devices"] = devices
    return address or None


def webhook_endpoints(user):
    ids = [endpoint.id for endpoint in active(user.webhook_endpoints)]
    return {"endpoint_ids": ids} if ids else None


def slack_webhooks(user):
    """Incoming webhooks and the bot's targets (direct messages, channels), by id only."""
    address = {}
    ids = [webhook.id for webhook in active(user.slack_webhooks)]
    if ids:
        address["slack_webhook_ids"] = ids
    bot_ids = [target.id for target in active(user.slack_bot_targets)]
    if bot_ids:
        address["slack_bot_target_ids"] = bot_ids
    return address or None


def inbox(user):
    return {"user_id": user.pk}


ADDRESS_LOOKUPS = {
    Channel.EMAIL: email_address,
    Channel.SMS: phone_number,
    Channel.PUSH: push_subscriptions,
    Channel.WEBHOOK: webhook_endpoints,
    Channel.SLACK: slack_webhooks,
    Channel.INAPP: inbox,
}


def address_for(user, channel):
    lookup = ADDRESS_LOOKUPS.get(channel)
    return lookup(user) if lookup else None


GONE_MODELS = {"push": PushSubscription, "device": MobileDevice, "slack": SlackWebhook, "slack_bot": SlackBotTarget,
               "webhook": WebhookEndpoint}


def deactivate(kind, contact_point_id, reason):
    """A provider said this contact point is gone for good: stop planning deliveries to it."""
    GONE_MODELS[kind].objects.filter(id=contact_point_id, active=True).update(
        active=False, deactivated_reason=reason[:200]
    )
