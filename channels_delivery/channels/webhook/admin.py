from django.contrib import admin

from notifications import models


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["user", "url", "active", "created_at"]
    exclude = ["secret"]
