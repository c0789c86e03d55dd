from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from channels_delivery import registry
from notifications.api.docs import RedocView, SwaggerView
from notifications.ops import admin_views, health
from notifications.ops.metrics import metrics_view
from notifications.planning.unsubscribe import unsubscribe
from notifications.realtime.views import inbox_page

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(admin_views.dashboard_view), name="admin-dashboard"),
    path("admin/template-preview/", admin.site.admin_view(admin_views.template_preview), name="admin-template-preview"),
    path("admin/login/", admin_views.login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
    path("api/", include("notifications.api.urls")),
    path("inbox/", inbox_page, name="inbox"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("unsubscribe/<str:token>/", unsubscribe, name="unsubscribe"),
]

# Each channel package may bring URLs (provider callbacks, contact-point API): found by the registry.
urlpatterns += [
    path("", include(f"{entry.package}.urls")) for entry in registry.CHANNELS if find_spec(f"{entry.package}.urls")
]

# Django's own error pages answer in the API's error format on /api/ paths.
handler400 = "notifications.api.errors.bad_request"
handler404 = "notifications.api.errors.not_found"
handler500 = "notifications.api.errors.server_error"
