from django.urls import path

from notifications.api.audiences import BroadcastViewSet
from notifications.api.audit import AuditEventList
from notifications.api.clients import ApiClientViewSet
from notifications.api.contacts import ProfileView, RecipientViewSet
from notifications.api.explain import ExplainView
from notifications.api.operations import DeadLetterList, Redrive
from notifications.api.preferences import MyPreferencesView, UserPreferencesView
from notifications.api.routers import OptionalSlashRouter
from notifications.api.staff import AnalyticsSummaryView, DeliveryViewSet
from notifications.api.status_webhooks import StatusWebhookViewSet
from notifications.api.templates import TemplateViewSet
from notifications.api.views import NotificationViewSet

router = OptionalSlashRouter()
router.register("notifications", NotificationViewSet, basename="notification")
router.register("templates", TemplateViewSet, basename="template")
router.register("broadcasts", BroadcastViewSet, basename="broadcast")
router.register("clients", ApiClientViewSet, basename="api-client")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("status-webhooks", StatusWebhookViewSet, basename="status-webhook")
router.register("recipients", RecipientViewSet, basename="recipient")

urlpatterns = [
    # Fixed paths first: they would otherwise match the routers' {id} patterns.
    path("notifications/preferences/", MyPreferencesView.as_view(), name="my-preferences"),
    path("users/<str:username>/preferences/", UserPreferencesView.as_view(), name="user-preferences"),
    path("notifications/<uuid:pk>/explain/", ExplainView.as_view(), name="notification-explain"),
    path("dead-letters/", DeadLetterList.as_view(), name="dead-letters"),
    path("audit/", AuditEventList.as_view(), name="audit-events"),
    path("deliveries/<uuid:delivery_id>/redrive/", Redrive.as_view(), name="delivery-redrive"),
    path("me/profile/", ProfileView.as_view(), name="profile"),
    path("analytics/summary/", AnalyticsSummaryView.as_view(), name="analytics-summary"),
    *router.urls,
]
