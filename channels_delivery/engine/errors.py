import time
from email.utils import parsedate_to_datetime

# X-RateLimit-Reset holds either seconds to wait or a Unix time; a value this large is a time.
EPOCH_THRESHOLD = 1_000_000_000


class DeliveryError(Exception):
    def __init__(self, message, *, status_code=None, retry_after=None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: timeouts, connection errors, 5xx, 429, an open circuit."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: bad address, 4xx, unsubscribed, bad configuration."""


def retry_after_seconds(headers, now=None):
    """Seconds the provider asked us to wait (Retry-After, else X-RateLimit-Reset), or None."""
    if not headers:
        return None
    headers = {str(name).lower(): value for name, value in dict(headers).items()}
    now = time.time() if now is None else now
    retry_after = headers.get("retry-after")
    if retry_after:
        retry_after = str(retry_after).strip()
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            value = float(str(reset).strip())
        except ValueError:
            return None
        return max(0.0, value - now) if value > EPOCH_THRESHOLD else max(0.0, value)
    return None


def is_transient_status(status_code):
    """The one HTTP status sorter: 408, 429 and 5xx are worth a retry, any other 4xx is not."""
    return status_code in (408, 429) or status_code >= 500


def error_for_status(provider, status_code, detail, headers=None):
    message = f"{provider} {status_code}: {detail}"
    if is_transient_status(status_code):
        return TransientDeliveryError(message, status_code=status_code, retry_after=retry_after_seconds(headers))
    return PermanentDeliveryError(message, status_code=status_code)
