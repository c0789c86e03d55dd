from django.contrib import admin

from channels_delivery.channels.push.models import MobileDevice
from notifications import models


@admin.register(models.PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "endpoint", "active", "deactivated_reason", "created_at"]
    list_filter = ["active"]


@admin.register(MobileDevice)
class MobileDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "provider", "platform", "active", "deactivated_reason", "created_at"]
    list_filter = ["provider", "active"]
