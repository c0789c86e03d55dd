
from django import forms
from django.contrib import admin, messages

from channels_delivery.engine import fallback, status_events
from notifications import models
from notifications.planning import templating


class DeliveryAttemptInline(admin.TabularInline):
    model = models.DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in models.DeliveryAttempt._meta.fields]


class DeliveryInline(admin.TabularInline):
    model = models.Delivery
    extra = 0
    fields = ["channel", "provider", "status", "position", "attempt_count", "reason", "sent_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(models.Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "category", "title", "priority", "status", "created_at"]
    list_filter = ["status", "priority", "category"]
    search_fields = ["id", "title", "recipient__username", "idempotency_key"]
    raw_id_fields = ["recipient", "sender", "broadcast"]
    inlines = [DeliveryInline]
    date_hierarchy = "created_at"


@admin.register(models.Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "notification", "channel", "provider", "status", "attempt_count", "updated_at"]
    list_filter = ["status", "channel", "provider"]
    search_fields = ["id", "provider_message_id", "notification__id"]
    raw_id_fields = ["notification"]
    exclude = ["message"]
    inlines = [DeliveryAttemptInline]
    actions = ["redrive"]

    @admin.action(description="Re-drive selected deliveries", permissions=["change"])
    def redrive(self, request, queryset):

        done, refused = 0, 0
        for delivery_id in queryset.values_list("id", flat=True):
            try:
                fallback.redrive(delivery_id, by=f"staff {request.user.get_username()} (admin)")
                done += 1
            except fallback.NotRedrivable:
                refused += 1
        if done:
            self.message_user(request, f"Re-queued {done} deliveries.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Skipped {refused} that are not failed.", messages.WARNING)


@admin.register(models.DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ["delivery", "number", "provider", "outcome", "provider_status_code", "duration_ms", "started_at"]
    list_filter = ["outcome", "provider"]
    raw_id_fields = ["delivery"]


@admin.register(models.ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "owner", "scopes", "active", "last_used_at"]
    exclude = ["key_hash"]
    readonly_fields = ["key_prefix"]


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
    list_display = ["key", "channel", "locale", "version", "active", "created_at"]
    list_filter = ["channel", "locale", "active"]
    readonly_fields = ["version", "active"]

    def save_model(self, request, obj, form, change):
        # An edit publishes a new version; the one edited stays as it was (inactive).
        content = {name: getattr(obj, name) for name in ("subject", "body", "html_body", "blocks", "variables")}
        published = templating.publish(obj.key, obj.channel, obj.locale, **content)
        obj.pk, obj.version, obj.active = published.pk, published.version, published.active


for model in [
    models.Category,
    models.RecipientProfile,
    models.Topic,
    models.ChannelPreference,
    models.GroupPreference,
    models.QuietHours,
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
