"""Fake Slack Web API: POST /api/conversations.open and /api/chat.postMessage with a bot token
(`Authorization: Bearer xoxb-...`), form or JSON bodies, answered as Slack does: HTTP 200 with
{"ok": true, ...} or {"ok": false, "error": "..."}, and HTTP 429 with Retry-After and
{"ok": false, "error": "ratelimited"} while a method is rate limited (per workspace and method,
as Slack counts them).

A workspace is a bot token; its users are `active`, `deleted` (user_not_found) or `disabled`
(user_disabled); its channels list the members, and the bot posts only where it is a member
(not_in_channel otherwise). A token marked inactive answers account_inactive.
"""

import json
import secrets
import time
from urllib.parse import parse_qs

from .server import FakeProvider


def slack_json(body, status=200, headers=None):
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(body).encode()


class FakeSlackWebAPI(FakeProvider):
    def __init__(self):
        super().__init__()
        self.workspaces = {}  # bot token -> {"team": T.., "users": {U..: state}, "channels": {C..: set()}, ...}
        self.rate_limited = {}  # (token, method) -> (until, retry_after)
        self.posts = []  # (team, channel, text, blocks)

    def reset(self):
        super().reset()
        self.workspaces.clear()
        self.rate_limited.clear()
        self.posts.clear()

    @property
    def base_url(self):
        return f"{self.url}/api/"

    def new_workspace(self):
        token = "xoxb-" + secrets.token_hex(12)
        self.workspaces[token] = {"team": "T" + secrets.token_hex(4).upper(), "users": {}, "channels": {},
                                  "bot_user": "U" + secrets.token_hex(4).upper(), "active": True, "dms": {}}
        return token

    def add_user(self, token, state="active"):
        user_id = "U" + secrets.token_hex(4).upper()
        self.workspaces[token]["users"][user_id] = state
        return user_id

    def add_channel(self, token, bot_member=True):
        channel_id = "C" + secrets.token_hex(4).upper()
        workspace = self.workspaces[token]
        workspace["channels"][channel_id] = {workspace["bot_user"]} if bot_member else set()
        return channel_id

    def rate_limit(self, token, method, retry_after=30):
        self.rate_limited[(token, method)] = (time.time() + retry_after, retry_after)

    def handle(self, request):
        method = request.path.removeprefix("/api/")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        workspace = self.workspaces.get(token)
        if workspace is None:
            return slack_json({"ok": False, "error": "invalid_auth"})
        if not workspace["active"]:
            return slack_json({"ok": False, "error": "account_inactive"})
        until, retry_after = self.rate_limited.get((token, method), (0, 0))
        if until > time.time():
            return slack_json({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(retry_after)})
        params = self.params(request)
        if method == "conversations.open":
            return self.conversations_open(workspace, params)
        if method == "chat.postMessage":
            return self.post_message(workspace, params)
        return slack_json({"ok": False, "error": "unknown_method"}, 404)

    @staticmethod
    def params(request):
        if request.headers.get("content-type", "").startswith("application/json"):
            return json.loads(request.body or b"{}")
        return {key: values[0] for key, values in parse_qs(request.body.decode()).items()}

    def conversations_open(self, workspace, params):
        users = [user for user in str(params.get("users", "")).split(",") if user]
        if not users:
            return slack_json({"ok": False, "error": "users_list_not_supplied"})
        for user in users:
            state = workspace["users"].get(user)
            if state in (None, "deleted"):
                return slack_json({"ok": False, "error": "user_not_found"})
            if state == "disabled":
                return slack_json({"ok": False, "error": "user_disabled"})
        key = ",".join(sorted(users))
        channel_id = workspace["dms"].setdefault(key, "D" + secrets.token_hex(4).upper())
        workspace["channels"].setdefault(channel_id, {workspace["bot_user"], *users})
        return slack_json({"ok": True, "channel": {"id": channel_id}})

    def post_message(self, workspace, params):
        channel = params.get("channel", "")
        if channel not in workspace["channels"]:
            return slack_json({"ok": False, "error": "channel_not_found"})
        if workspace["bot_user"] not in workspace["channels"][channel]:
            return slack_json({"ok": False, "error": "not_in_channel"})
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not params.get("text") and not blocks:
            return slack_json({"ok": False, "error": "no_text"})
        ts = f"{time.time():.6f}"
        with self.lock:
            self.posts.append((workspace["team"], channel, params.get("text"), blocks))
        return slack_json({"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text"), "ts": ts}})
