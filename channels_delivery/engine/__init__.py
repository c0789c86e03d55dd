"""How a message leaves the building: delivery tasks, claims, fallback chains, backoff, the
circuit breaker, the token bucket and the outbound guard. It knows Delivery rows and typed
messages, and finds channels only through channels_delivery.registry.

Entry points for the rest of the service live in fallback.py: enqueue_deliveries(),
stalled_fallbacks() (for the reaper) and redrive() (dead letters)."""
