"""Fake Slack incoming webhooks: POST /services/T../B../secret with a JSON body.

Answers as Slack does: 200 `ok`; 400 `invalid_payload` (not JSON, or no text and no blocks) or
`invalid_blocks`; 404 `no_service` for a removed or unknown webhook; 410 `channel_is_archived`.
"""

import json
import secrets

from tests.support.fakes.server import FakeProvider

BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def slack_answer(status, text):
    return status, {"Content-Type": "text/html"}, text.encode()


class FakeSlack(FakeProvider):
    def __init__(self):
        super().__init__()
        self.hooks = {}  # path -> state: "active", "removed", "archived"

    def reset(self):
        super().reset()
        self.hooks.clear()

    def new_webhook(self):
        path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_urlsafe(18)}"
        self.hooks[path] = "active"
        return self.url + path

    def remove(self, url):
        self.hooks[url.removeprefix(self.url)] = "removed"

    def archive(self, url):
        self.hooks[url.removeprefix(self.url)] = "archived"

    def handle(self, request):
        state = self.hooks.get(request.path)
        if request.method != "POST" or state in (None, "removed"):
            return slack_answer(404, "no_service")
        if state == "archived":
            return slack_answer(410, "channel_is_archived")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return slack_answer(400, "invalid_payload")
        if not payload.get("text") and not payload.get("blocks"):
            return slack_answer(400, "no_text")
        for block in payload.get("blocks") or []:
            if block.get("type") not in BLOCK_TYPES:
                return slack_answer(400, "invalid_blocks")
            if block["type"] == "header" and (
                block["text"].get("type") != "plain_text" or len(block["text"].get("text", "")) > 150
            ):
                return slack_answer(400, "invalid_blocks")
        return slack_answer(200, "ok")

    def posts(self):
        return [request.json() for request in self.requests]
