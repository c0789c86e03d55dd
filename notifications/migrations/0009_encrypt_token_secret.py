"""ApiClient.token_secret, the HS256 secret of the end-user tokens an app signs, is a credential:
encrypted at rest like the webhook secrets (0002). A client without one now holds NULL, not ''."""

import notifications.encryption
from django.db import migrations


def seal_existing_secrets(apps, schema_editor):
    """'' becomes NULL; a secret stored in plaintext is read as it is and written back sealed."""
    model = apps.get_model("notifications", "ApiClient")
    clients = model.objects.using(schema_editor.connection.alias)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET token_secret = NULL WHERE token_secret = ''")
    clients.bulk_update(list(clients.filter(token_secret__isnull=False)), ["token_secret"], batch_size=500)


def unseal_secrets(apps, schema_editor):
    model = apps.get_model("notifications", "ApiClient")
    with schema_editor.connection.cursor() as cursor:
        for client in model.objects.using(schema_editor.connection.alias).all():
            cursor.execute(f"UPDATE {model._meta.db_table} SET token_secret = %s WHERE id = %s",
                           [client.token_secret or "", client.pk])


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0008_fewer_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apiclient",
            name="token_secret",
            field=notifications.encryption.EncryptedTextField(blank=True, null=True),
        ),
        migrations.RunPython(seal_existing_secrets, unseal_secrets),
    ]
