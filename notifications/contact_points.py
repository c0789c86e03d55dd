"""Where a channel reaches a user: the address part of a message, or None when there is none.

Webhook endpoints and Slack webhooks are named by id only: their URLs and signing secrets are
credentials, read by the channel from their rows at send time and never copied into a Delivery.
Push subscriptions carry their endpoint and public keys, which the encryption needs and which
are not secret.
"""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from channels_delivery.phone import InvalidPhoneNumber, normalise_e164

from .models import Channel, PushSubscription, SlackWebhook, WebhookEndpoint


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


def push_subscriptions(user):
    subscriptions = [
        {"id": sub.id, "endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        for sub in PushSubscription.objects.filter(user=user, active=True).order_by("id")
    ]
    return {"subscriptions": subscriptions} if subscriptions else None


def webhook_endpoints(user):
    ids = list(WebhookEndpoint.objects.filter(user=user, active=True).order_by("id").values_list("id", flat=True))
    return {"endpoint_ids": ids} if ids else None


def slack_webhooks(user):
    ids = list(SlackWebhook.objects.filter(user=user, active=True).order_by("id").values_list("id", flat=True))
    return {"slack_webhook_ids": ids} if ids else None


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


GONE_MODELS = {"push": PushSubscription, "slack": SlackWebhook}


def deactivate(kind, contact_point_id, reason):
    """A provider said this contact point is gone for good: stop planning deliveries to it."""
    GONE_MODELS[kind].objects.filter(id=contact_point_id, active=True).update(
        active=False, deactivated_reason=reason[:200]
    )
