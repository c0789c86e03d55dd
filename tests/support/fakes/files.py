"""A plain file host: GET /<path> answers the bytes put there, for attachments given as URLs."""

import secrets

from .server import FakeProvider


class FakeFileHost(FakeProvider):
    def __init__(self):
        super().__init__()
        self.files = {}  # path -> (content type, bytes)

    def reset(self):
        super().reset()
        self.files.clear()

    def put(self, content, content_type="application/octet-stream", name="file"):
        path = f"/files/{secrets.token_hex(6)}/{name}"
        self.files[path] = (content_type, content)
        return self.url + path

    def handle(self, request):
        if request.method != "GET" or request.path not in self.files:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        content_type, content = self.files[request.path]
        return 200, {"Content-Type": content_type}, content
