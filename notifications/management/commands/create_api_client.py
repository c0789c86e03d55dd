"""Create an API client (an app that sends) and print its key, which is shown this once."""

import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from notifications.models import ApiClient
from notifications.ops import audit


class Command(BaseCommand):
    help = "Create an API client for OWNER (a username) and print its key once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="The user the app acts as.")
        parser.add_argument("--scopes", default="send,read", help=f"Comma-separated: {', '.join(ApiClient.SCOPES)}.")

    def handle(self, *args, name, owner, scopes, **options):
        wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        unknown = sorted(set(wanted) - set(ApiClient.SCOPES))
        if unknown or not wanted:
            raise CommandError(f"Unknown or no scopes: {', '.join(unknown) or '(none)'}; choose from {', '.join(ApiClient.SCOPES)}.")
        if not name.strip():
            raise CommandError("The name may not be blank.")
        try:
            user = get_user_model().objects.get(username=owner)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {owner!r}.")
        client, key = ApiClient.issue(name.strip()[:200], user, scopes=list(dict.fromkeys(wanted)))
        audit.record(audit.Action.API_CLIENT_CREATE, client, via="cli", actor=f"cli {getpass.getuser()}",
                     after={"name": client.name, "owner": owner, "scopes": client.scopes})
        self.stdout.write(f"API client {client.name} ({client.key_prefix}) for {owner}, scopes {', '.join(client.scopes)}")
        self.stdout.write(f"key (shown once): {key}")
