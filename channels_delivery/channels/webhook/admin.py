from django.contrib import admin

from notifications import models


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["user", "url", "method", "content_type", "active", "created_at"]
    exclude = ["secret", "extra_headers"]
