from urllib.parse import urlsplit

from django import forms
from django.contrib import admin

from notifications import models


class SlackWebhookForm(forms.ModelForm):
    """A Slack webhook URL is a credential: it can be set here but is never shown again."""

    url = forms.URLField(
        required=False, max_length=500, widget=forms.PasswordInput(render_value=False),
        help_text="https://hooks.slack.com/services/...; leave empty to keep the current URL.",
    )

    class Meta:
        model = models.SlackWebhook
        fields = ["user", "url", "channel_name", "active", "deactivated_reason"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        if url:
            return url
        if self.instance.pk:
            return self.instance.url
        raise forms.ValidationError("This field is required.")


@admin.register(models.SlackWebhook)
class SlackWebhookAdmin(admin.ModelAdmin):
    form = SlackWebhookForm
    list_display = ["user", "host", "channel_name", "active", "deactivated_reason", "created_at"]

    @admin.display(description="host")
    def host(self, webhook):
        return urlsplit(webhook.url).hostname
