"""Operators' management commands: create an API client, show circuits and queues, re-drive
dead letters in bulk with a filter (send_test_notification runs against a worker in
test_worker_ops.py)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from channels_delivery.engine.circuit import breaker
from notifications.models import ApiClient, AuditEvent, Delivery, DeliveryStatus

from tests.support import chain, reset_engine_state

pytestmark = pytest.mark.django_db


def test_create_api_client_prints_the_key_once_and_audits(make_user, capsys):
    make_user("shop")
    call_command("create_api_client", "Shop", "--owner", "shop", "--scopes", "send,read")
    out = capsys.readouterr().out
    key = out.split("key (shown once): ")[1].strip()
    client = ApiClient.objects.get(name="Shop")
    assert key.startswith(f"nk_{client.key_prefix}.") and client.key_hash == ApiClient.hash_secret(key.split(".", 1)[1])
    event = AuditEvent.objects.get(action="api_client.create")
    assert event.via == "cli" and event.actor.startswith("cli ") and key not in json.dumps(event.after)
    with pytest.raises(CommandError, match="Unknown or no scopes: root"):
        call_command("create_api_client", "X", "--owner", "shop", "--scopes", "root")
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_client", "X", "--owner", "ghost")


def test_ops_status_shows_circuits_queues_and_dead_letters(make_user, capsys):
    reset_engine_state()
    for _ in range(10):
        breaker("twilio").record_failure()
    chain(make_user("lin"), ("email", DeliveryStatus.FAILED))
    call_command("ops_status", "--json")
    figures = json.loads(capsys.readouterr().out)
    assert figures["circuits"]["twilio"] == "open" and figures["circuits"]["sendgrid"] == "closed"
    assert set(figures["queues"]) >= {"dispatch", "email", "sms", "maintenance"}
    assert set(figures["queues"]["sms"]) == {"urgent", "high", "medium", "low"}
    assert figures["dead_letters"] == 1
    call_command("ops_status")
    text = capsys.readouterr().out
    assert "twilio" in text and "open" in text and "dead letters: 1" in text
    reset_engine_state()


def test_redrive_dead_letters_in_bulk_with_a_filter(make_user, capsys):
    lin = make_user("lin")
    _, [email] = chain(lin, ("email", DeliveryStatus.FAILED, {"last_error": "mailbox full", "provider": "sendgrid"}))
    _, [sms] = chain(lin, ("sms", DeliveryStatus.FAILED, {"last_error": "21211 invalid number", "provider": "twilio"}))
    _, [alive] = chain(lin, ("email", DeliveryStatus.SENT))

    call_command("redrive_dead_letters", "--reason", "check", "--channel", "email", "--dry-run")
    assert f"would re-drive {email.id}" in capsys.readouterr().out
    assert Delivery.objects.get(id=email.id).status == DeliveryStatus.FAILED

    call_command("redrive_dead_letters", "--reason", "mail relay fixed", "--error", "mailbox",
                 "--since", (timezone.now() - timezone.timedelta(hours=1)).isoformat())
    assert "re-driven 1" in capsys.readouterr().out
    assert Delivery.objects.get(id=email.id).status == DeliveryStatus.QUEUED
    assert Delivery.objects.get(id=sms.id).status == DeliveryStatus.FAILED
    assert Delivery.objects.get(id=alive.id).status == DeliveryStatus.SENT
    event = AuditEvent.objects.get(action="delivery.redrive")
    assert event.target_id == str(email.id) and event.reason == "mail relay fixed" and event.via == "cli"

    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("redrive_dead_letters", "--reason", "x", "--since", "yesterday")
    with pytest.raises(CommandError, match="may not be blank"):
        call_command("redrive_dead_letters", "--reason", " ")
