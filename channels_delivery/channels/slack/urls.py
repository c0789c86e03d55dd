from channels_delivery.channels.slack.api import SlackBotTargetViewSet, SlackWebhookViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/slack-webhooks", SlackWebhookViewSet, basename="slack-webhook")
router.register("api/me/slack-bot-targets", SlackBotTargetViewSet, basename="slack-bot-target")
urlpatterns = router.urls
