"""One-click unsubscribe (RFC 8058): a signed link per user, category and channel.

The signature is the authentication: POST to the link switches that category off for that
channel; GET only shows a confirmation form (mail scanners follow links, they must not unsubscribe).
A link names the address it was sent to and expires (NOTIFY_UNSUBSCRIBE_MAX_AGE): a forwarded or
leaked old mail cannot switch off mail that now goes to another address.
"""

import functools

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications.models import Category, Channel, ChannelPreference

SALT = "notifications.planning.unsubscribe"


def token_for(user_id, category, channel, address):
    return signing.dumps({"u": user_id, "c": category, "ch": channel, "a": address}, salt=SALT)


@functools.cache
def url_around_token(base_url):
    """(before, after) the token in the link, reversed once per process (reverse() per email was
    a tenth of planning's time)."""
    before, _, after = (base_url + reverse("unsubscribe", args=["TOKEN"])).rpartition("TOKEN")
    return before, after


def url_for(user_id, category, channel, address):
    before, after = url_around_token(settings.PUBLIC_BASE_URL)
    return before + token_for(user_id, category, channel, address) + after


def email_headers(notification):
    """List-Unsubscribe headers for an email, none for a critical category (it cannot be left)."""
    if notification.category.critical:
        return {}
    url = url_for(notification.recipient_id, notification.category_id, Channel.EMAIL, notification.recipient.email)
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def resolve(token):
    """(user, category, channel) named by a valid, unexpired token for the user's current address,
    or None."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.NOTIFY_UNSUBSCRIBE_MAX_AGE)
        user_id, category_key, channel, address = payload["u"], payload["c"], payload["ch"], payload["a"]
    except (signing.BadSignature, KeyError, TypeError):  # SignatureExpired is a BadSignature
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    category = Category.objects.filter(key=category_key, critical=False).first()
    if user is None or category is None or channel not in Channel.values:
        return None
    if not isinstance(address, str) or address.lower() != (user.email or "").lower():
        return None
    return user, category, channel


@csrf_exempt  # the signed token is the credential; RFC 8058 POSTs carry no cookie or CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    target = resolve(token)
    if target is None:
        return render(request, "notifications/unsubscribe.html", {"invalid": True}, status=400)
    user, category, channel = target
    done = request.method == "POST"
    if done:
        ChannelPreference.objects.update_or_create(
            user=user, category=category, channel=channel, defaults={"enabled": False}
        )
    context = {"category": category, "channel": channel, "done": done, "action": request.path}
    return render(request, "notifications/unsubscribe.html", context)
