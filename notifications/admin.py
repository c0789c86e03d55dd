from django.contrib import admin

from . import models


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
    list_display = ["user", "url", "active", "created_at"]
    exclude = ["secret"]


@admin.register(models.Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["key", "channel", "locale", "version", "active", "created_at"]
    list_filter = ["channel", "locale", "active"]


for model in [
    models.Category,
    models.RecipientProfile,
    models.PushSubscription,
    models.SlackWebhook,
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
