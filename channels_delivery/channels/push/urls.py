from channels_delivery.channels.push.api import MobileDeviceViewSet, PushSubscriptionViewSet
from notifications.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/me/push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")
router.register("api/me/devices", MobileDeviceViewSet, basename="mobile-device")
urlpatterns = router.urls
