"""The HTTP side of provider callbacks: verify, parse, record, answer 200 fast."""

import logging

from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from channels_delivery.engine.events import record

logger = logging.getLogger(__name__)


class BadSignature(Exception):
    pass


class BadPayload(Exception):
    pass


@method_decorator(csrf_exempt, name="dispatch")
class StatusCallbackView(View):
    """Subclasses implement validate_request() (raise BadSignature) and parse_events()."""

    http_method_names = ["post"]
    provider = ""

    def post(self, request, **kwargs):
        try:
            self.validate_request(request, **kwargs)
        except BadSignature as error:
            logger.warning("%s callback refused: %s", self.provider, error)
            return HttpResponseForbidden("invalid signature")
        try:
            events = self.parse_events(request, **kwargs)
        except BadPayload as error:
            return HttpResponseBadRequest(str(error))
        for event in events:
            record(event)
        # Unknown deliveries and duplicates are answered 200 too: a provider retries anything else.
        return HttpResponse(status=200)

    def validate_request(self, request, **kwargs):
        raise NotImplementedError

    def parse_events(self, request, **kwargs):
        raise NotImplementedError
