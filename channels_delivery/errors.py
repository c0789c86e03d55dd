class DeliveryError(Exception):
    def __init__(self, message, *, status_code=None, retry_after=None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: timeouts, connection errors, 5xx, 429, an open circuit."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: bad address, 4xx, unsubscribed, bad configuration."""
