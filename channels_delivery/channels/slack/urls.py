from channels_delivery.channels.slack.api import SlackWebhookViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/slack-webhooks", SlackWebhookViewSet, basename="slack-webhook")
urlpatterns = router.urls
