from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_encryption_at_rest")]

    operations = [
        migrations.AddField(
            model_name="apiclient", name="token_secret", field=models.CharField(blank=True, max_length=100)
        ),
        migrations.AddField(model_name="apiclient", name="token_public_key", field=models.TextField(blank=True)),
    ]
