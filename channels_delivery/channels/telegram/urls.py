from channels_delivery.channels.telegram.api import TelegramChatViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/telegram-chats", TelegramChatViewSet, basename="telegram-chat")
urlpatterns = router.urls
