"""`/inbox/`: the end user's inbox page, plain HTML and JavaScript (static/realtime/inbox.js).

The page reads the end-user token from the URL fragment (`/inbox/#token=...`, never sent to the
server nor logged) and keeps it in sessionStorage; without one it uses the Django session.
"""

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def inbox_page(request):
    return render(request, "realtime/inbox.html", {"ws_url": settings.NOTIFY_WS_PUBLIC_URL})
