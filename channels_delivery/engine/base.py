"""What a channel package provides to the engine: providers, a typed message, an address lookup
and a default layout, bundled as one ChannelKit (channels_delivery/channels/<name>/channel.py)."""

from dataclasses import dataclass, field, fields
from typing import Callable


@dataclass
class SendResult:
    provider_message_id: str = ""
    status_code: str = ""
    payload: dict = field(default_factory=dict)
    # The answer is the confirmation itself (the in-app inbox): the delivery is `delivered` at once.
    confirmed: bool = False


class Provider:
    """One way out for one channel. send() returns a SendResult or raises a DeliveryError."""

    name = ""
    channel = ""
    # False for channels whose destinations users choose: they keep a breaker per destination
    # host (circuit.through_destination_breaker) instead of the provider's shared one.
    shared_breaker = True
    # Whether a chunk may call it from several threads at once (engine/chunks.py).
    concurrent = True

    def is_configured(self):
        return True

    def has_targets(self, message):
        """Whether the message names a contact point this provider reaches (side-by-side kits)."""
        return True

    def send(self, delivery_id, message):
        raise NotImplementedError

    def after_sent(self, sent):
        """Called once the deliveries it sent are recorded, with [(delivery_id, message)], a chunk's
        at once: what should follow a send but must not hold it up (in-app: live events)."""


class InvalidMessage(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class Message:
    """What a delivery sends, fixed when it is planned and stored in Delivery.message.

    Each channel subclasses it with its own fields; from_dict() refuses unknown or missing ones,
    so planning and the providers cannot drift apart on a key's name.
    """

    notification_id: str = ""
    category: str = ""
    template: dict | None = None  # key, locale and version of the template that rendered it

    @classmethod
    def field_names(cls):
        """Its fields' names, in order (read once per class: planning asks for every message)."""
        names = cls.__dict__.get("_field_names")
        if names is None:
            names = tuple(f.name for f in fields(cls))
            type.__setattr__(cls, "_field_names", names)
        return names

    @classmethod
    def from_dict(cls, data):
        names = cls.field_names()
        unknown = sorted(set(data).difference(names))
        if unknown:
            raise InvalidMessage(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:  # a required field is missing
            raise InvalidMessage(f"{cls.__name__}: {error}") from error

    def to_dict(self):
        """The fields that are set. The values are JSON's kinds (str, int, list, dict), not
        dataclasses, so they are taken as they are: asdict's deep copy of each was a sixth of
        planning's CPU per message."""
        return {name: value for name in self.field_names() if (value := getattr(self, name)) is not None}

    @classmethod
    def accepts(cls, name):
        return name in cls.field_names()


@dataclass(frozen=True)
class ChannelKit:
    name: str
    providers: list  # in failover order
    message: type  # a Message subclass
    address: Callable  # user -> dict of the message's address fields, or None (no contact point)
    layout: Callable  # notification -> dict of the message's content fields
    # rendered template -> content fields that replace the layout's (SMS: the template is the text)
    template_layout: Callable | None = None
    # The providers reach different contact points of a user (push: browsers and phones), so every
    # provider with targets in the message is called, instead of the next only when one fails.
    side_by_side: bool = False
    # The user's related managers address() reads (e.g. "webhook_endpoints"): planning prefetches
    # them for a whole batch of recipients, so address() makes no query per user.
    contact_points: tuple = ()
