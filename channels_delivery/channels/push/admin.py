from django.contrib import admin

from notifications import models


@admin.register(models.PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "endpoint", "active", "deactivated_reason", "created_at"]
    list_filter = ["active"]
