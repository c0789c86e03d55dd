"""What the engine tells whoever listens (metrics, in notifications.ops): one Django signal per
event, sent after the row was written. Receivers must be cheap and must not raise."""

from django.dispatch import Signal

# channel, provider, outcome (AttemptOutcome), duration (seconds)
attempt_recorded = Signal()
# channel, provider, latency (seconds from the notification's creation to the provider's accept)
delivery_sent = Signal()
# channel, wait (seconds until the retry)
retry_scheduled = Signal()
# from_channel, to_channel
fell_back = Signal()
# channel: a failed delivery with nothing left in its chain
dead_lettered = Signal()
# provider, wait (seconds until the booked slot)
rate_limited = Signal()
