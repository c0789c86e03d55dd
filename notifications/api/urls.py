from django.urls import path
from rest_framework.routers import SimpleRouter

from .audiences import BroadcastViewSet
from .clients import ApiClientViewSet
from .contacts import (
    ProfileView,
    PushSubscriptionViewSet,
    RecipientViewSet,
    SlackWebhookViewSet,
    WebhookEndpointViewSet,
)
from .staff import AnalyticsSummaryView, DeliveryViewSet
from .views import NotificationViewSet



class OptionalSlashRouter(SimpleRouter):
    """Paths answer with or without their trailing slash (`PUT .../read` and `.../read/`)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("notifications", NotificationViewSet, basename="notification")
router.register("broadcasts", BroadcastViewSet, basename="broadcast")
router.register("clients", ApiClientViewSet, basename="api-client")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("me/push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")
router.register("me/webhooks", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("me/slack-webhooks", SlackWebhookViewSet, basename="slack-webhook")
router.register("recipients", RecipientViewSet, basename="recipient")

urlpatterns = [
    path("me/profile/", ProfileView.as_view(), name="profile"),
    path("analytics/summary/", AnalyticsSummaryView.as_view(), name="analytics-summary"),
    *router.urls,
]
