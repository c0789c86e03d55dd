from urllib.parse import urlsplit

from django import forms
from django.contrib import admin

from channels_delivery.channels.slack.providers import url_problem
from channels_delivery.channels.slack.models import SlackBotTarget, SlackWorkspace
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
            if problem := url_problem(url):
                raise forms.ValidationError(problem)
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


class SlackWorkspaceForm(forms.ModelForm):
    """A bot token is a credential: it can be set here but is never shown again."""

    bot_token = forms.CharField(
        required=False, max_length=300, widget=forms.PasswordInput(render_value=False),
        help_text="xoxb-...; leave empty to keep the current token.",
    )

    class Meta:
        model = SlackWorkspace
        fields = ["team_id", "name", "bot_token", "active"]

    def clean_bot_token(self):
        token = self.cleaned_data["bot_token"]
        if token:
            return token
        if self.instance.pk:
            return self.instance.bot_token
        raise forms.ValidationError("This field is required.")


@admin.register(SlackWorkspace)
class SlackWorkspaceAdmin(admin.ModelAdmin):
    form = SlackWorkspaceForm
    list_display = ["team_id", "name", "active", "created_at"]


@admin.register(SlackBotTarget)
class SlackBotTargetAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "kind", "target_id", "active", "deactivated_reason"]
