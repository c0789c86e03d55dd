"""The Django admin for operators: fast lists on very large tables, actions that ask for a
reason and leave an audit record, template editing with a live preview, and the dashboard
(notifications/ops/admin_views.py)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone

from channels_delivery.engine.fallback import NotRedrivable, redrive
from notifications import lifecycle, models
from notifications.ops import audit
from notifications.ops.dashboard import providers
from notifications.ops.pagination import EstimatedCountPaginator
from channels_delivery.engine import status_events
from notifications.planning import templating

Action = audit.Action


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Recorded in the audit trail with your name.")


def ask_reason(modeladmin, request, queryset, title):
    """The first POST of an action shows this form; its answer comes back with `reason` set.
    Returns the reason, or a TemplateResponse to show."""
    if "apply" in request.POST:
        form = ReasonForm(request.POST)
        if form.is_valid():
            return form.cleaned_data["reason"]
    else:
        form = ReasonForm()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset[:50],
        "count": queryset.count(),
        "action": request.POST.get("action"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/notifications/action_reason.html", context)


class CreatedWithinFilter(admin.SimpleListFilter):
    """Date ranges on an indexed column (no date_hierarchy: it scans the table for distinct dates)."""

    title = "created"
    parameter_name = "created"
    field = "created_at"
    RANGES = {"1h": timezone.timedelta(hours=1), "24h": timezone.timedelta(days=1),
              "7d": timezone.timedelta(days=7), "30d": timezone.timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]

    def queryset(self, request, queryset):
        if self.value() in self.RANGES:
            return queryset.filter(**{f"{self.field}__gte": timezone.now() - self.RANGES[self.value()]})
        return queryset


class StartedWithinFilter(CreatedWithinFilter):
    title = "started"
    parameter_name = "started"
    field = "started_at"


class ProviderFilter(admin.SimpleListFilter):
    """Providers from the registry (a DISTINCT over the table would scan it)."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(name, name) for name in providers()]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class NotificationProviderFilter(ProviderFilter):
    def queryset(self, request, queryset):
        return queryset.filter(deliveries__provider=self.value()).distinct() if self.value() else queryset


class NotificationChannelFilter(admin.SimpleListFilter):
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return models.Channel.choices

    def queryset(self, request, queryset):
        return queryset.filter(deliveries__channel=self.value()).distinct() if self.value() else queryset


class FastListAdmin(admin.ModelAdmin):
    """Lists on large tables: estimated totals, no full count, ordering on an indexed column."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def uuid_search(self, queryset, term, *fields):
        import uuid

        try:
            value = uuid.UUID(term)
        except ValueError:
            return None
        condition = Q()
        for field in fields:
            condition |= Q(**{field: value})
        return queryset.filter(condition)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    max_num = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeliveryAttemptInline(ReadOnlyInline):
    model = models.DeliveryAttempt
    fields = ["number", "provider", "outcome", "provider_status_code", "duration_ms", "started_at", "error", "note"]
    readonly_fields = fields


class DeliveryInline(ReadOnlyInline):
    model = models.Delivery
    fields = ["channel", "provider", "status", "route", "position", "attempt_count", "reason", "sent_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(models.Notification)
class NotificationAdmin(FastListAdmin):
    list_display = ["id", "recipient", "category", "title", "priority", "status", "created_at"]
    list_filter = ["status", "priority", "category", NotificationChannelFilter, NotificationProviderFilter,
                   CreatedWithinFilter]
    search_fields = ["=recipient__username", "=recipient__email", "=recipient__profile__phone",
                     "=idempotency_key"]
    search_help_text = "Recipient username, email or phone; a notification id; an idempotency key."
    list_select_related = ["recipient", "category"]
    ordering = ["-created_at"]
    raw_id_fields = ["recipient", "sender", "broadcast", "digest"]
    readonly_fields = ["trace", "created_at"]
    inlines = [DeliveryInline]
    actions = ["resend_failed", "cancel_scheduled"]

    def get_search_results(self, request, queryset, search_term):
        by_id = self.uuid_search(queryset, search_term.strip(), "id")
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Resend failed channels (asks for a reason)", permissions=["change"])
    def resend_failed(self, request, queryset):
        def resend(notification, reason):
            record, queued = lifecycle.resend(notification.id, reason=reason, requested_by=request.user)
            return Action.NOTIFICATION_RESEND, None, {"channels": record.channels,
                                                      "queued": [str(d.id) for d in queued]}

        return audited_action(self, request, queryset, "Resend the failed channels of these notifications",
                              "resent", queryset.select_related(None).only("id", "title", "category_id"), resend)

    @admin.action(description="Cancel scheduled notifications (asks for a reason)", permissions=["change"])
    def cancel_scheduled(self, request, queryset):
        def cancel(notification, reason):
            if notification.status != models.NotificationStatus.SCHEDULED:
                raise lifecycle.NotAllowed(f"not scheduled ({notification.status})")
            lifecycle.cancel(notification.id)
            return Action.NOTIFICATION_CANCEL, {"status": notification.status}, {"status": "cancelled"}

        return audited_action(self, request, queryset, "Cancel these scheduled notifications", "cancelled",
                              queryset.select_related(None).only("id", "status", "title", "category_id"), cancel)


def audited_action(modeladmin, request, queryset, question, verb, rows, act):
    """An admin action that asks for a reason, then runs act(row, reason) on each row: it returns
    (audit action, before, after) to record, or raises a refusal (lifecycle.NotAllowed,
    NotRedrivable), which is reported with the row instead."""
    reason = ask_reason(modeladmin, request, queryset, question)
    if not isinstance(reason, str):
        return reason  # the form asking for it
    done, refused = 0, []
    for row in rows:
        try:
            action, before, after = act(row, reason)
        except (lifecycle.NotAllowed, NotRedrivable) as refusal:
            refused.append(f"{row.id}: {refusal}")
            continue
        audit.record_request(request, action, row, reason=reason, before=before, after=after)
        done += 1
    report(modeladmin, request, done, verb, refused)


def report(modeladmin, request, done, verb, refused):
    if done:
        modeladmin.message_user(request, f"{done} {verb}.", messages.SUCCESS)
    if refused:
        shown = "; ".join(refused[:5]) + (f" (and {len(refused) - 5} more)" if len(refused) > 5 else "")
        modeladmin.message_user(request, f"{len(refused)} skipped: {shown}", messages.WARNING)


@admin.register(models.Delivery)
class DeliveryAdmin(FastListAdmin):
    list_display = ["id", "notification_id", "recipient", "channel", "provider", "status", "attempt_count",
                    "reason", "created_at"]
    list_filter = ["status", "channel", ProviderFilter, "notification__category", "notification__priority",
                   CreatedWithinFilter]
    search_fields = ["=notification__recipient__username", "=notification__recipient__email",
                     "=notification__recipient__profile__phone", "=provider_message_id"]
    search_help_text = "Recipient username, email or phone; a provider message id; a delivery or notification id."
    list_select_related = ["notification__recipient"]
    ordering = ["-created_at"]
    raw_id_fields = ["notification"]
    exclude = ["message"]
    readonly_fields = ["channel", "provider", "status", "route", "position", "attempt_count", "next_retry_at",
                       "provider_message_id", "reason", "last_error", "template_version", "provider_payload",
                       "created_at", "updated_at", "sent_at", "delivered_at"]
    inlines = [DeliveryAttemptInline]
    actions = ["redrive"]

    @admin.display(description="recipient")
    def recipient(self, delivery):
        return delivery.notification.recipient

    def get_search_results(self, request, queryset, search_term):
        by_id = self.uuid_search(queryset, search_term.strip(), "id", "notification_id")
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Re-drive dead letters (asks for a reason)", permissions=["change"])
    def redrive(self, request, queryset):
        def redrive_one(delivery, reason):
            redrive(delivery.id, by=f"staff {request.user.get_username()} (admin): {reason}")
            return Action.DELIVERY_REDRIVE, {"status": delivery.status}, {"status": "queued"}

        return audited_action(self, request, queryset, "Re-drive these failed deliveries", "re-driven",
                              queryset.select_related(None).only("id", "status", "channel", "notification_id"),
                              redrive_one)


@admin.register(models.DeliveryAttempt)
class DeliveryAttemptAdmin(FastListAdmin):
    """The attempt log is append-only: nobody edits or deletes it here."""

    list_display = ["delivery", "number", "provider", "outcome", "provider_status_code", "duration_ms", "started_at"]
    list_filter = ["outcome", ProviderFilter, StartedWithinFilter]
    ordering = ["-started_at"]
    raw_id_fields = ["delivery"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in models.ApiClient.SCOPES],
                                       widget=forms.CheckboxSelectMultiple, initial=["send", "read"])

    class Meta:
        model = models.ApiClient
        fields = ["name", "owner", "scopes", "active"]


@admin.register(models.ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ["name", "key_prefix", "owner", "scopes", "active", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
    raw_id_fields = ["owner"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # A new client gets its key from issue(); it is shown once, here, and stored hashed.
        client, key = models.ApiClient.issue(obj.name, obj.owner, scopes=form.cleaned_data["scopes"])
        obj.pk, obj.key_prefix, obj.key_hash = client.pk, client.key_prefix, client.key_hash
        obj._state.adding = False
        audit.record_request(request, Action.API_CLIENT_CREATE, client,
                             after={"name": client.name, "owner": client.owner.get_username(), "scopes": client.scopes})
        self.message_user(request, f"The API key of {client.name}, shown this once: {key}", messages.WARNING)

    @admin.action(description="Revoke selected API clients", permissions=["change"])
    def revoke(self, request, queryset):
        for client in queryset.filter(active=True):
            client.revoke()
            audit.record_request(request, Action.API_CLIENT_REVOKE, client, before={"active": True},
                                 after={"active": False})
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(models.RecipientGrant)
class RecipientGrantAdmin(admin.ModelAdmin):
    """Operators grant an app's clients recipients it did not create (tenancy.managed_users)."""

    list_display = ["user", "client", "created_at"]
    search_fields = ["user__username", "client__name"]
    raw_id_fields = ["user", "client"]


class TemplateForm(forms.ModelForm):
    """Operators' edits are checked by the same rules as the templates API."""

    class Meta:
        model = models.Template
        fields = ["key", "channel", "locale", "subject", "body", "html_body", "blocks", "variables"]

    def clean(self):
        data = super().clean()
        errors = templating.template_errors(
            data.get("subject", ""), data.get("body", ""), data.get("html_body", ""), data.get("blocks") or [],
            data.get("variables") or [],
        )
        for field, messages_ in errors.items():
            self.add_error(field if field in self.fields else None, messages_)
        return data


@admin.register(models.Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["key", "channel", "locale", "version", "active", "author", "created_at"]
    list_filter = ["channel", "locale", "active"]
    search_fields = ["key"]
    readonly_fields = ["version", "active", "author"]
    change_form_template = "admin/notifications/template/change_form.html"

    def save_model(self, request, obj, form, change):
        # An edit publishes a new version; the one edited stays as it was (inactive).
        content = {name: getattr(obj, name) for name in ("subject", "body", "html_body", "blocks", "variables")}
        before = audit.template_state(models.Template.objects.get(pk=obj.pk)) if change else None
        published = templating.publish(obj.key, obj.channel, obj.locale, **content,
                                       author=audit.describe(request.user))
        obj.pk, obj.version, obj.active, obj.author = published.pk, published.version, published.active, published.author
        audit.record_request(request, Action.TEMPLATE_UPDATE if change else Action.TEMPLATE_CREATE, published,
                             before=before, after=audit.template_state(published))

    def delete_model(self, request, obj):
        audit.record_request(request, Action.TEMPLATE_DELETE, obj, before=audit.template_state(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for template in queryset:
            audit.record_request(request, Action.TEMPLATE_DELETE, template, before=audit.template_state(template))
        super().delete_queryset(request, queryset)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["versions"] = models.Template.objects.filter(
                key=obj.key, channel=obj.channel, locale=obj.locale
            ).order_by("-version")
        return super().render_change_form(request, context, add, change, form_url, obj)


class AuditedPreferenceAdmin(admin.ModelAdmin):
    """Staff changing someone's preferences leave a record, like the API does."""

    def state(self, obj):
        return {field.name: str(getattr(obj, field.attname)) for field in obj._meta.concrete_fields}

    def save_model(self, request, obj, form, change):
        before = self.state(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        audit.record_request(request, Action.PREFERENCES_CHANGE, obj.user if hasattr(obj, "user") else obj,
                             before=before, after=self.state(obj))

    def delete_model(self, request, obj):
        audit.record_request(request, Action.PREFERENCES_CHANGE, obj.user if hasattr(obj, "user") else obj,
                             before=self.state(obj), after=None)
        super().delete_model(request, obj)


for model in [models.ChannelPreference, models.GroupPreference, models.QuietHours]:
    admin.site.register(model, AuditedPreferenceAdmin)


@admin.register(models.AuditEvent)
class AuditEventAdmin(FastListAdmin):
    list_display = ["created_at", "actor", "via", "action", "target_type", "target_repr", "reason"]
    list_filter = ["action", "via", CreatedWithinFilter]
    search_fields = ["actor", "=target_id", "=request_id"]
    ordering = ["-created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


for model in [
    models.Category,
    models.RecipientProfile,
    models.Topic,
    models.Broadcast,
    models.ProviderEvent,
    models.IdempotencyRecord,
    models.Attachment,
]:
    admin.site.register(model)


# --- Digests and escalation (the clock) ---
@admin.register(models.Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["user", "category", "window_start", "window_end", "status", "sent_at"]
    list_filter = ["status", "category"]
    raw_id_fields = ["user", "notification"]
    date_hierarchy = "window_end"


@admin.register(models.Escalation)
class EscalationAdmin(admin.ModelAdmin):
    list_display = ["notification", "channel", "due_at", "status", "reason", "done_at"]
    list_filter = ["status", "channel"]
    raw_id_fields = ["notification"]


admin.site.index_template = "admin/notifications/index.html"
admin.site.site_header = "Notification service"
# --- Status webhooks of sending apps ---
@admin.register(models.StatusWebhook)
class StatusWebhookAdmin(admin.ModelAdmin):
    list_display = ["client", "url", "active", "created_at"]
    exclude = ["secret"]


@admin.register(models.StatusEvent)
class StatusEventAdmin(admin.ModelAdmin):
    list_display = ["id", "webhook", "type", "status", "attempt_count", "created_at", "last_error"]
    list_filter = ["status", "type"]
    actions = ["redrive"]

    @admin.action(description="Re-drive selected failed status events")
    def redrive(self, request, queryset):
        count = sum(status_events.redrive(event_id) for event_id in queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} status events queued again.")
