from channels_delivery.channels.push.api import PushSubscriptionViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")
urlpatterns = router.urls
