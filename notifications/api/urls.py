from django.urls import path
from rest_framework.routers import SimpleRouter

from .explain import ExplainView
from .operations import DeadLetterList, Redrive
from .preferences import MyPreferencesView, UserPreferencesView
from .templates import TemplateViewSet
from .views import NotificationViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("templates", TemplateViewSet, basename="template")

urlpatterns = [
    # --- prefs ---
    path("notifications/preferences/", MyPreferencesView.as_view(), name="my-preferences"),
    path("users/<str:username>/preferences/", UserPreferencesView.as_view(), name="user-preferences"),
    path("notifications/<uuid:pk>/explain/", ExplainView.as_view(), name="notification-explain"),
    *router.urls,
    path("dead-letters/", DeadLetterList.as_view(), name="dead-letters"),
    path("deliveries/<uuid:delivery_id>/redrive/", Redrive.as_view(), name="delivery-redrive"),
]
