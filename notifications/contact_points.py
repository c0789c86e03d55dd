"""Where a channel reaches a user: the address part of a message, or None when there is none."""

from .models import Channel


def email_address(user):
    return {"to": user.email} if user.email else None


def inbox(user):
    return {"user_id": user.pk}


ADDRESS_LOOKUPS = {
    Channel.EMAIL: email_address,
    Channel.INAPP: inbox,
}


def address_for(user, channel):
    lookup = ADDRESS_LOOKUPS.get(channel)
    return lookup(user) if lookup else None
