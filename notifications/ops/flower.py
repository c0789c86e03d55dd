"""Start Flower the safe way: `python -m notifications.ops.flower`.

Flower shows every task's arguments and can shut workers down, so outside development it
refuses to start without basic auth (FLOWER_BASIC_AUTH="user:password[,user2:password2]", read
by Flower itself from the environment, so it never appears in a process list). It binds to
loopback unless FLOWER_ADDRESS says otherwise; put a TLS proxy in front to expose it.
"""

import os
import sys

import django


def flower_argv(settings):
    return [
        sys.executable, "-m", "celery", "-A", "config", "flower",
        f"--address={settings.FLOWER_ADDRESS}", f"--port={settings.FLOWER_PORT}",
    ]


def refusal(settings):
    if settings.FLOWER_BASIC_AUTH:
        users = [pair for pair in settings.FLOWER_BASIC_AUTH.split(",") if pair]
        if not all(":" in pair and pair.split(":", 1)[1] for pair in users):
            return "FLOWER_BASIC_AUTH must be user:password pairs separated by commas"
        return None
    if settings.IS_DEVELOPMENT:
        return None
    return ("refusing to start Flower without FLOWER_BASIC_AUTH (user:password) outside development "
            f"(NOTIFY_ENVIRONMENT={settings.NOTIFY_ENVIRONMENT})")


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.conf import settings

    problem = refusal(settings)
    if problem:
        print(f"flower: {problem}", file=sys.stderr)
        return 2
    if not settings.FLOWER_BASIC_AUTH:
        print("flower: no FLOWER_BASIC_AUTH; open to anyone who reaches "
              f"{settings.FLOWER_ADDRESS}:{settings.FLOWER_PORT} (development only)", file=sys.stderr)
    argv = flower_argv(settings)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
