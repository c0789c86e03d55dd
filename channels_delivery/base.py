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
    # False for channels whose destinations users choose: they keep a breaker per destination
    # host (circuit.through_destination_breaker) instead of the provider's shared one.
    shared_breaker = True

    def is_configured(self):
        return True

    def send(self, delivery_id, message):
        raise NotImplementedError
