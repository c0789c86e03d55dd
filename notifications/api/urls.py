from django.urls import path
from rest_framework.routers import SimpleRouter

from .operations import DeadLetterList, Redrive

from .views import NotificationViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = router.urls + [
    path("dead-letters/", DeadLetterList.as_view(), name="dead-letters"),
    path("deliveries/<uuid:delivery_id>/redrive/", Redrive.as_view(), name="delivery-redrive"),
]
