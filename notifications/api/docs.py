"""The API's documentation pages, served with their assets from this service (no CDN).

Swagger UI and ReDoc come from drf-spectacular-sidecar's static files (SPECTACULAR_SETTINGS
*_DIST = "SIDECAR"), so the pages work offline. Swagger UI is the split view: its start-up
script is a separate request instead of an inline <script>, which a strict CSP would block.
"""

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    pass


class RedocView(SpectacularRedocView):
    # drf-spectacular's page also loads web fonts from Google; this one uses the browser's.
    template_name = "api/redoc.html"
