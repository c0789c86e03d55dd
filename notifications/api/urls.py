from django.urls import path
from rest_framework.routers import SimpleRouter

from .audiences import BroadcastViewSet
from .clients import ApiClientViewSet
from .contacts import (
    MobileDeviceViewSet,
    ProfileView,
    PushSubscriptionViewSet,
    RecipientViewSet,
    SlackBotTargetViewSet,
    SlackWebhookViewSet,
    WebhookEndpointViewSet,
)
from .explain import ExplainView
from .operations import DeadLetterList, Redrive
from .preferences import MyPreferencesView, UserPreferencesView
from .status_webhooks import StatusWebhookViewSet
from .staff import AnalyticsSummaryView, DeliveryViewSet
from .templates import TemplateViewSet
from .views import NotificationViewSet


class OptionalSlashRouter(SimpleRouter):
    """Paths answer with or without their trailing slash (`PUT .../read` and `.../read/`)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("notifications", NotificationViewSet, basename="notification")
router.register("templates", TemplateViewSet, basename="template")
router.register("broadcasts", BroadcastViewSet, basename="broadcast")
router.register("clients", ApiClientViewSet, basename="api-client")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("me/push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")
router.register("me/devices", MobileDeviceViewSet, basename="mobile-device")
router.register("me/webhooks", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("me/slack-bot-targets", SlackBotTargetViewSet, basename="slack-bot-target")
router.register("me/slack-webhooks", SlackWebhookViewSet, basename="slack-webhook")
router.register("status-webhooks", StatusWebhookViewSet, basename="status-webhook")
router.register("recipients", RecipientViewSet, basename="recipient")

urlpatterns = [
    # Fixed paths first: they would otherwise match the routers' {id} patterns.
    path("notifications/preferences/", MyPreferencesView.as_view(), name="my-preferences"),
    path("users/<str:username>/preferences/", UserPreferencesView.as_view(), name="user-preferences"),
    path("notifications/<uuid:pk>/explain/", ExplainView.as_view(), name="notification-explain"),
    path("dead-letters/", DeadLetterList.as_view(), name="dead-letters"),
    path("deliveries/<uuid:delivery_id>/redrive/", Redrive.as_view(), name="delivery-redrive"),
    path("me/profile/", ProfileView.as_view(), name="profile"),
    path("analytics/summary/", AnalyticsSummaryView.as_view(), name="analytics-summary"),
    *router.urls,
]
