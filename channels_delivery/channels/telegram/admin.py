from django.contrib import admin

from channels_delivery.channels.telegram.models import TelegramChat


@admin.register(TelegramChat)
class TelegramChatAdmin(admin.ModelAdmin):
    list_display = ["user", "chat_id", "label", "active", "deactivated_reason", "created_at"]
    list_filter = ["active"]
    search_fields = ["user__username", "chat_id"]
