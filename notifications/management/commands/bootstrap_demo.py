"""Creates a demo recipient, an operator and an API key, and prints how to use them."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from notifications.models import ApiClient

DEMO_APP = "demo-app"


class Command(BaseCommand):
    help = "Create demo users and a fresh API key for a first run; prints URLs and the key."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--flower-url", default="http://127.0.0.1:5555")

    def handle(self, *args, base_url, flower_url, **options):
        users = get_user_model()
        users.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
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
        # Keys are shown once; each run replaces the demo key rather than reading a stored one.
        ApiClient.objects.filter(owner=owner, name="Demo app").delete()
        _client, key = ApiClient.issue("Demo app", owner, scopes=["send", "read"])
        self.stdout.write(
            f"""
  API          {base_url}/api/   (docs: {base_url}/api/docs/)
  Admin        {base_url}/admin/   ({admin_note})
  Flower       {flower_url}/
  Demo API key {key}

  Try it:
    curl -s -X POST {base_url}/api/notifications/ \\
      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
      -d '{{"recipients": ["demo"], "category": "orders", "title": "Order 123 shipped", "message": "Hello!", "channels": ["email", "inapp"]}}'
"""
        )
