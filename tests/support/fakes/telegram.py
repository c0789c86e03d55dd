"""Fake Telegram Bot API: POST /bot<token>/sendMessage with a JSON body, answered as Telegram does.

200 {"ok": true, "result": Message}; 401 for a wrong token; 400 "chat not found" for a chat that
never opened the bot, "message text is empty", "message is too long"; 403 "bot was blocked by the
user" for a chat in `blocked`; 429 with parameters.retry_after once `flood(seconds)` is called.
"""

import json
import secrets
import time

from tests.support.fakes.server import FakeProvider


def bot_answer(status, payload):
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def bot_error(code, description, **parameters):
    payload = {"ok": False, "error_code": code, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return bot_answer(code, payload)


class FakeTelegram(FakeProvider):
    def __init__(self):
        super().__init__()
        self.token = f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(26)}"
        self.chats = set()  # chats that pressed Start
        self.blocked = set()
        self.flood_seconds = 0
        self.next_message_id = 1

    def reset(self):
        super().reset()
        self.chats.clear()
        self.blocked.clear()
        self.flood_seconds = 0

    def open_chat(self, chat_id):
        self.chats.add(chat_id)
        return chat_id

    def flood(self, seconds):
        """The next sendMessage answers 429 Too Many Requests with this retry_after."""
        self.flood_seconds = seconds

    def handle(self, request):
        if request.method != "POST" or request.path != f"/bot{self.token}/sendMessage":
            return bot_error(401 if request.path.endswith("/sendMessage") else 404,
                             "Unauthorized" if request.path.endswith("/sendMessage") else "Not Found")
        try:
            body = json.loads(request.body)
        except ValueError:
            return bot_error(400, "Bad Request: can't parse JSON")
        if self.flood_seconds:
            seconds, self.flood_seconds = self.flood_seconds, 0
            return bot_error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        chat_id, text = body.get("chat_id"), body.get("text") or ""
        if not text.strip():
            return bot_error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return bot_error(400, "Bad Request: message is too long")
        if chat_id in self.blocked:
            return bot_error(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.chats:
            return bot_error(400, "Bad Request: chat not found")
        with self.lock:
            message_id, self.next_message_id = self.next_message_id, self.next_message_id + 1
        result = {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat_id, "type": "private"},
                  "text": text}
        return bot_answer(200, {"ok": True, "result": result})

    def texts(self, chat_id=None):
        return [r.json()["text"] for r in self.requests if chat_id is None or r.json()["chat_id"] == chat_id]
