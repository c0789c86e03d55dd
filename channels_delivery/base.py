from dataclasses import dataclass, field


@dataclass
class SendResult:
    provider_message_id: str = ""
    status_code: str = ""
    payload: dict = field(default_factory=dict)


class Provider:
    """One way out for one channel. send() returns a SendResult or raises a DeliveryError."""

    name = ""
    channel = ""

    def is_configured(self):
        return True

    def has_targets(self, message):
        """Whether the message names a contact point this provider reaches (side-by-side channels)."""
        return True

    def send(self, delivery_id, message):
        raise NotImplementedError
