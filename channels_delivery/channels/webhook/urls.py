from channels_delivery.channels.webhook.api import WebhookEndpointViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/webhooks", WebhookEndpointViewSet, basename="webhook-endpoint")
urlpatterns = router.urls
