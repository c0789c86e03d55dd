from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="apiclient", name="token_secret", field=models.CharField(blank=True, max_length=100)
        ),
        migrations.AddField(model_name="apiclient", name="token_public_key", field=models.TextField(blank=True)),
    ]
