from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages

from channels_delivery import status_events

from . import models, templating


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
        import channels_delivery
        from channels_delivery.fallback import NotRedrivable

        done, refused = 0, 0
        for delivery_id in queryset.values_list("id", flat=True):
            try:
                channels_delivery.redrive(delivery_id, by=f"staff {request.user.get_username()} (admin)")
                done += 1
            except NotRedrivable:
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


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["user", "url", "method", "content_type", "active", "created_at"]
    exclude = ["secret", "extra_headers"]


class SlackWorkspaceForm(forms.ModelForm):
    """A bot token is a credential: it can be set here but is never shown again."""

    bot_token = forms.CharField(
        required=False, max_length=300, widget=forms.PasswordInput(render_value=False),
        help_text="xoxb-...; leave empty to keep the current token.",
    )

    class Meta:
        model = models.SlackWorkspace
        fields = ["team_id", "name", "bot_token", "active"]

    def clean_bot_token(self):
        token = self.cleaned_data["bot_token"]
        if token:
            return token
        if self.instance.pk:
            return self.instance.bot_token
        raise forms.ValidationError("This field is required.")


@admin.register(models.SlackWorkspace)
class SlackWorkspaceAdmin(admin.ModelAdmin):
    form = SlackWorkspaceForm
    list_display = ["team_id", "name", "active", "created_at"]


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


class SlackWebhookForm(forms.ModelForm):
    """A Slack webhook URL is a credential: it can be set here but is never shown again."""

    url = forms.URLField(
        required=False, max_length=500, widget=forms.PasswordInput(render_value=False),
        help_text="https://hooks.slack.com/services/...; leave empty to keep the current URL.",
    )

    class Meta:
        model = models.SlackWebhook
        fields = ["user", "url", "channel_name", "active", "deactivated_reason"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        if url:
            return url
        if self.instance.pk:
            return self.instance.url
        raise forms.ValidationError("This field is required.")


@admin.register(models.SlackWebhook)
class SlackWebhookAdmin(admin.ModelAdmin):
    form = SlackWebhookForm
    list_display = ["user", "host", "channel_name", "active", "deactivated_reason", "created_at"]

    @admin.display(description="host")
    def host(self, webhook):
        return urlsplit(webhook.url).hostname


@admin.register(models.Template)
class TemplateAdmin(admin.ModelAdmin):
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
    models.PushSubscription,
    models.MobileDevice,
    models.SlackBotTarget,
    models.Attachment,
    models.Topic,
    models.ChannelPreference,
    models.GroupPreference,
    models.QuietHours,
    models.Broadcast,
    models.ProviderEvent,
    models.IdempotencyRecord,
]:
    admin.site.register(model)


# --- clock ---
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
