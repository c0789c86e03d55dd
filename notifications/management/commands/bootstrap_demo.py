"""Creates a demo recipient, an operator and an API key, and prints how to use them.

Run at every `bin/serve` start, so what it prints must stay valid across restarts: the demo app's
key is stored hashed like every key, and its clear text only in a git-ignored file readable by its
owner alone (mode 600, under the run directory, one per database), from which it is printed again.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from notifications.api import end_user_tokens
from notifications.models import ApiClient
from notifications.tenancy import grant

DEMO_APP = "demo-app"
DEMO_CLIENT = "Demo app"


def default_key_file():
    return settings.BASE_DIR / ".run" / f"demo-api-key.{settings.DATABASES['default']['NAME']}"


def read_key(path):
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def write_key(path, key):
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file left by an older run may have been wider
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")


# How long the JWT printed for the demo user lasts (the longest end-user tokens may live).
JWT_LIFETIME = 3600


def demo_key(owner, path):
    """The key in `path` while it still opens the demo app's client; else a new one, saved there."""
    key = read_key(path)
    client = ApiClient.for_key(key, cached=False) if key else None
    if client is not None and client.owner_id == owner.pk and client.name == DEMO_CLIENT:
        return key, False
    ApiClient.objects.filter(owner=owner, name=DEMO_CLIENT).delete()
    _client, key = ApiClient.issue(DEMO_CLIENT, owner, scopes=["send", "read"])
    write_key(path, key)
    return key, True


class Command(BaseCommand):
    help = "Create demo users, an API key kept across runs and a user token; prints URLs and both."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--flower-url", default="http://127.0.0.1:5555")
        parser.add_argument("--key-file", type=Path, default=None,
                            help="where the demo key's clear text is kept (default: .run/demo-api-key.<database>)")

    def handle(self, *args, base_url, flower_url, key_file, **options):
        users = get_user_model()
        demo, _ = users.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
        owner, _ = users.objects.get_or_create(username=DEMO_APP, defaults={"email": "app@example.com"})
        admin, created = users.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        admin_note = "existing admin user; password unchanged"
        if created:
            password = secrets.token_urlsafe(12)
            admin.set_password(password)
            admin.save()
            admin_note = f"user admin, password {password} (shown once)"
        key_file = key_file or default_key_file()
        key, new = demo_key(owner, key_file)
        client = ApiClient.for_key(key, cached=False)
        grant(client, [demo])  # the demo user is the demo app's recipient (tenancy)
        jwt_token, _expires = end_user_tokens.mint(client, demo, JWT_LIFETIME)
        shown = key_file.relative_to(settings.BASE_DIR) if key_file.is_relative_to(settings.BASE_DIR) else key_file
        key_note = f"new, kept in {shown}" if new else f"the same as at the last start, from {shown}"
        token, _ = Token.objects.get_or_create(user=demo)
        self.stdout.write(
            f"""
  API          {base_url}/api/   (docs: {base_url}/api/docs/ and {base_url}/api/redoc/)
  Admin        {base_url}/admin/   ({admin_note})
  Flower       {flower_url}/   (UI in the browser; its API: see the README)
  Demo API key {key}   ({key_note})
  Token of the user "demo" (an end user): {token.key}
  Or the app-signed JWT the demo app minted for "demo" (valid {JWT_LIFETIME // 60} minutes): {jwt_token}

  Send as the demo app:
    curl -s -X POST {base_url}/api/notifications/ \\
      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
      -d '{{"recipients": ["demo"], "category": "orders", "title": "Order 123 shipped", "message": "Hello!", "channels": ["email", "inapp"]}}'
  Read the inbox as the user "demo":
    curl -s {base_url}/api/notifications/ -H "Authorization: Token {token.key}"
    curl -s {base_url}/api/notifications/ -H "Authorization: Bearer {jwt_token}"
"""
        )
