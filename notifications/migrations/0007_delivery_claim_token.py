from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0006_encrypt_bot_tokens_and_status_secrets")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="claim_token",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
    ]
