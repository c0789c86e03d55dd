"""One delivery to several contact points of one user (push subscriptions, webhook endpoints,
Slack webhooks): each target's outcome is kept, and one rule turns them into the delivery's."""

from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError


def settle(provider, outcomes, *, require_all=False):
    """outcomes: list of (target_id, error or None, detail dict).

    With require_all False the delivery is sent when any target accepted it; with True, a
    transient failure at any target retries the whole delivery (receivers de-duplicate on our
    delivery id). Otherwise it fails transiently if any failure was transient, else for good.
    """
    if not outcomes:
        raise PermanentDeliveryError(f"{provider}: no active contact point left")
    payload = {
        "targets": [
            {"id": target_id, "ok": error is None, **({"error": str(error)} if error else {}), **detail}
            for target_id, error, detail in outcomes
        ]
    }
    errors = [error for _, error, _ in outcomes if error is not None]
    transient = [error for error in errors if isinstance(error, TransientDeliveryError)]
    accepted = len(outcomes) - len(errors)
    if accepted and not (require_all and transient):
        return payload
    if transient:
        first = transient[0]
        raise TransientDeliveryError(
            summary(provider, errors, len(outcomes)), status_code=first.status_code,
            retry_after=max((e.retry_after for e in transient if e.retry_after is not None), default=None),
        )
    raise PermanentDeliveryError(summary(provider, errors, len(outcomes)), status_code=errors[0].status_code)


def summary(provider, errors, total):
    if total == 1:
        return str(errors[0])
    return f"{provider}: {len(errors)} of {total} failed: " + "; ".join(str(error) for error in errors)[:1500]
