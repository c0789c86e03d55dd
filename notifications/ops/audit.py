"""The audit trail: one record() for every operator action and preference change, whoever made
it (a staff user in the admin or over the API, an API client, a user changing their own
preferences, a management command). Purged past NOTIFY_RETENTION_AUDIT_DAYS by cleanup.purge()."""

from notifications.models import AuditEvent
from notifications.ops import correlation

Action = AuditEvent.Action


def actor_of(request):
    """(user, api client) acting in this request; an API key acts as its client, not its owner."""
    from notifications.api.auth import api_client_of

    # A DRF request knows its API key; a plain Django request (the admin) has only a user.
    client = api_client_of(request) if hasattr(request, "auth") else None
    if client is not None:
        return None, client
    user = getattr(request, "user", None)
    return (user if user is not None and user.is_authenticated else None), None


def describe(user=None, client=None, fallback="system"):
    if client is not None:
        return f"api client {client.name} ({client.key_prefix})"
    if user is not None:
        return f"{'staff' if user.is_staff else 'user'} {user.get_username()}"
    return fallback


def record(action, target, *, user=None, client=None, via, reason="", before=None, after=None, actor=None):
    """Write one audit event. `target` is a model instance (or a (type, id, repr) triple)."""
    if isinstance(target, tuple):
        target_type, target_id, target_repr = target
    else:
        target_type, target_id, target_repr = target._meta.label_lower, str(target.pk), str(target)
    return AuditEvent.objects.create(
        action=action,
        actor_user=user,
        actor_client=client,
        actor=(actor or describe(user, client))[:200],
        via=via,
        target_type=target_type,
        target_id=str(target_id)[:64],
        target_repr=str(target_repr)[:200],
        reason=(reason or "")[:500],
        before=before,
        after=after,
        request_id=correlation.current() or "",
    )


def record_request(request, action, target, **fields):
    """record() for the caller of an API request or admin page."""
    user, client = actor_of(request)
    via = "admin" if request.path.startswith("/admin/") else "api"
    return record(action, target, user=user, client=client, via=via, **fields)


def template_state(template):
    return {
        "id": template.pk, "version": template.version, "active": template.active,
        "subject": template.subject, "body": template.body, "html_body": template.html_body,
        "blocks": template.blocks, "variables": list(template.variables),
    }

