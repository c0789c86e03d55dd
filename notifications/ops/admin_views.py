"""Admin pages beyond the model lists: the operators' dashboard and the template live preview."""

import json

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST
from rest_framework.exceptions import Throttled

from notifications.api import throttling
from notifications.models import Channel, Template
from notifications.ops import dashboard
from notifications.planning import templating

CIRCUIT_LABELS = {"closed": "closed", "half_open": "half-open", "open": "OPEN"}


def login(request, extra_context=None):
    """The admin's login page, guarded like the API's credentials (NOTIFY_THROTTLE_LOGIN_FAILURE_RATE):
    every POST that leaves the caller logged out counts against its address, and past the limit
    the address is answered 429 with Retry-After before its password is checked, until the window
    ends. Redis unreachable: 503 (api/errors.py), as on the API."""
    if request.method == "POST":
        try:
            throttling.refuse_failed_logins(request)
        except Throttled as refusal:
            context = {**admin.site.each_context(request), "title": "Log in", "wait": refusal.wait}
            response = TemplateResponse(request, "admin/notifications/login_refused.html", context, status=429)
            response["Retry-After"] = str(refusal.wait)
            return response
    response = admin.site.login(request, extra_context)
    if request.method == "POST" and not request.user.is_authenticated:
        throttling.note_failed_login(request)
    return response


def dashboard_view(request):
    figures = dashboard.overview()
    queues = figures["queues"] or {}
    workers = figures["workers"] or {}
    oldest = figures["oldest_waiting"] or {}
    rows = []
    for queue in sorted(set(queues) | set(workers)):
        lanes = queues.get(queue) or {}
        rows.append({
            "queue": queue, "lanes": lanes, "total": sum(lanes.values()),
            "workers": workers.get(queue, []), "oldest": oldest.get(queue),
        })
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "figures": figures,
        "queue_rows": rows,
        "lane_names": list(next(iter(queues.values()), {}).keys()) if queues else [],
        "circuits": [(name, CIRCUIT_LABELS[state], state) for name, state in (figures["circuits"] or {}).items()],
    }
    return TemplateResponse(request, "admin/notifications/dashboard.html", context)


def preview_context(template, username, extra):
    context = templating.sample_context(template)
    if username:
        user = get_user_model().objects.select_related("profile").get(username=username)
        context["recipient"] = {"username": user.get_username(), "first_name": user.first_name,
                                "last_name": user.last_name}
        context["locale"] = templating.profile_locale(user) or template.locale
    context.update(templating.plain(extra))
    placeholders = [name for name in template.variables if name not in context]
    context.update({name: f"[{name}]" for name in placeholders})
    return context, placeholders


@require_POST
def template_preview(request):
    """Render the form's (unsaved) template for a chosen user and sample context, as JSON."""
    data, errors = request.POST, {}
    try:
        blocks = json.loads(data.get("blocks") or "[]")
    except ValueError:
        blocks, errors["blocks"] = [], ["Not valid JSON."]
    try:
        extra = json.loads(data.get("context") or "{}")
        if not isinstance(extra, dict):
            raise ValueError
    except ValueError:
        extra, errors["context"] = {}, ['Expected a JSON object, e.g. {"order": "123"}.']
    channel = data.get("channel") or Channel.EMAIL
    template = Template(
        key=data.get("key") or "preview", channel=channel, locale=data.get("locale") or "en", version=0,
        subject=data.get("subject", ""), body=data.get("body", ""), html_body=data.get("html_body", ""),
        blocks=blocks, variables=[v.strip() for v in (data.get("variables") or "").split(",") if v.strip()],
    )
    if not errors:
        errors.update(templating.template_errors(template.subject, template.body, template.html_body,
                                                 template.blocks, template.variables))
    if not errors:
        try:
            context, placeholders = preview_context(template, data.get("user", "").strip(), extra)
        except get_user_model().DoesNotExist:
            errors["user"] = [f"No user named '{data.get('user', '')[:50]}'."]
    if errors:
        return JsonResponse({"errors": {k: [str(m) for m in v] for k, v in errors.items()}}, status=400)
    try:
        rendered = templating.render(template, context)
    except Exception as error:  # an operator's template must not become a 500
        return JsonResponse({"errors": {"template": [f"failed to render: {error}"]}}, status=400)
    return JsonResponse({"subject": rendered.subject, "body": rendered.body, "html": rendered.html,
                         "blocks": rendered.blocks, "placeholders": placeholders})
