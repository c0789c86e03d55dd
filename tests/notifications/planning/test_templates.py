"""Templates: sandboxed rendering, validation on save, versions, locales, preview, sends."""

import pytest
from django.conf import settings

from notifications.admin import TemplateForm
from notifications.models import Notification, RecipientProfile, Template
from notifications.planning import planner
from notifications.planning.rendering import render_content

pytestmark = pytest.mark.django_db

URL = "/api/templates/"


@pytest.fixture
def staff(user_api, make_user):
    return user_api(make_user("ops", is_staff=True))


def make_template(key="orders", channel="email", locale="en", **content):
    content.setdefault("subject", "Order {{ order_id }} shipped")
    content.setdefault("body", "Hello {{ recipient.first_name }}, order {{ order_id }} is on its way.")
    content.setdefault("variables", ["order_id"])
    return Template.objects.create(key=key, channel=channel, locale=locale, **content)


def fields(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


def test_create_list_and_retrieve(staff):
    body = {"key": "orders", "channel": "email", "subject": "Order {{ order_id }}", "body": "Hi {{ order_id }}",
            "html_body": "<p>{{ order_id }}</p>", "variables": ["order_id"]}

    created = staff.post(URL, body, format="json")

    assert created.status_code == 201, created.content
    template = created.json()
    assert template["version"] == 1 and template["active"] is True and template["locale"] == "en"
    assert staff.get(f"{URL}{template['id']}/").json()["subject"] == "Order {{ order_id }}"
    assert staff.get(URL, {"key": "orders"}).json()["total"] == 1
    assert staff.get(URL, {"key": "other"}).json()["total"] == 0


def test_editing_publishes_a_new_version_and_keeps_the_old_one_inactive(staff):
    first = staff.post(URL, {"key": "orders", "channel": "email", "subject": "v1", "body": "one"}, format="json").json()

    second = staff.patch(f"{URL}{first['id']}/", {"subject": "v2"}, format="json")

    assert second.status_code == 200, second.content
    assert second.json()["version"] == 2 and second.json()["body"] == "one" and second.json()["id"] != first["id"]
    versions = list(Template.objects.filter(key="orders").order_by("version").values_list("version", "active"))
    assert versions == [(1, False), (2, True)]
    again = staff.post(URL, {"key": "orders", "channel": "email", "subject": "v3", "body": "three"}, format="json")
    assert again.json()["version"] == 3
    assert Template.objects.filter(key="orders", active=True).get().subject == "v3"


def test_identity_cannot_change_on_edit(staff):
    template = make_template()
    assert "channel" in fields(staff.patch(f"{URL}{template.id}/", {"channel": "sms"}, format="json"))


def test_delete_deactivates(staff):
    template = make_template()
    assert staff.delete(f"{URL}{template.id}/").status_code == 204
    template.refresh_from_db()
    assert template.active is False
    assert staff.get(URL, {"active": "true"}).json()["total"] == 0


@pytest.mark.parametrize(
    "part, source, message",
    [
        ("body", "{{ settings.SECRET_KEY }}", "Unknown variables: settings"),
        ("body", "{% load static %}{% static 'x' %}", "the tag 'load' is not allowed"),
        ("body", '{% include "/etc/passwd" %}', "the tag 'include' is not allowed"),
        ("html_body", '{% extends "admin/base.html" %}', "the tag 'extends' is not allowed"),
        ("body", "{% debug %}", "the tag 'debug' is not allowed"),
        ("body", '{% url "admin:index" %}', "the tag 'url' is not allowed"),
        ("html_body", "{% autoescape off %}{{ title }}{% endautoescape %}", "the tag 'autoescape' is not allowed"),
        ("html_body", "{{ title|safe }}", "The filter 'safe' is not allowed"),
        ("subject", "{{ title.__class__.__mro__ }}", "may not begin with underscores"),
        ("subject", "{{ data._meta }}", "may not begin with underscores"),
        ("body", "{% if title %}unclosed", "Unclosed tag"),
        ("body", "{{ title|nosuchfilter }}", "The filter 'nosuchfilter' is not allowed"),
    ],
)
def test_injection_attempts_and_syntax_errors_are_refused(staff, part, source, message):
    body = {"key": "orders", "channel": "email", "subject": "s", "body": "b", part: source}

    errors = fields(staff.post(URL, body, format="json"))

    assert message in errors[part][0]
    assert not Template.objects.exists()


def test_bad_blocks_variables_and_locale_are_refused(staff):
    assert set(fields(staff.post(URL, {"key": "orders", "channel": "slack", "body": "b", "locale": "../etc"},
                                 format="json"))) == {"locale"}
    errors = fields(staff.post(URL, {"key": "orders", "channel": "slack", "body": "b", "blocks": {"type": "section"},
                                     "variables": ["ok", "not ok"]}, format="json"))
    assert set(errors) == {"blocks", "variables"}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "{% debug %}"}}]
    body = {"key": "orders", "channel": "slack", "body": "b", "blocks": blocks}
    errors = fields(staff.post(URL, body, format="json"))
    assert "debug" in errors["blocks"][0]


def template_form(**data):
    return TemplateForm(data={"key": "orders", "channel": "email", "locale": "en", "blocks": "[]", **data})


def test_the_admin_form_validates_too():
    form = template_form(body="{% include 'x' %}")
    assert not form.is_valid() and "body" in form.errors


def test_end_users_and_app_keys_cannot_manage_templates(user_api, make_user, app_api):
    template = make_template()
    ada = user_api(make_user("ada"))
    assert ada.get(URL).status_code == 403
    assert ada.post(f"{URL}{template.id}/preview/", {}, format="json").status_code == 403
    assert app_api.post(URL, {"key": "x", "channel": "email", "body": "b"}, format="json").status_code == 403


def test_preview_renders_with_a_sample_context(staff):
    template = make_template(
        html_body="<p>{{ order_id }} for {{ recipient.username }}</p>", body="{{ note }}",
        variables=["order_id", "note"],
    )

    response = staff.post(f"{URL}{template.id}/preview/", {"context": {"order_id": "<b>123</b>"}}, format="json")

    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["subject"] == "Order <b>123</b> shipped"
    assert preview["html"] == "<p>&lt;b&gt;123&lt;/b&gt; for [username]</p>"
    assert preview["body"] == "[note]" and preview["placeholders"] == ["note"] and preview["version"] == 1
    assert fields(staff.post(f"{URL}{template.id}/preview/", {"context": "nope"}, format="json")) == {
        "context": ['Expected a dictionary of items but got type "str".']
    }


def notify(user, **extra):
    defaults = {"category_id": "orders", "title": "Literal title", "body": "Literal body", "routes": [["email"]]}
    return Notification.objects.create(recipient=user, **{**defaults, **extra})


def test_rendering_escapes_html_only_in_html_and_sees_only_plain_data(make_user):
    ada = make_user("ada", first_name="Ada")
    make_template(html_body="<p>{{ order_id }}</p>{{ recipient.email }}{{ data.items }}{{ recipient.password }}")
    notification = notify(ada, context={"order_id": "<script>x</script> & co"}, data={"k": "v"})

    [delivery] = planner.plan(notification)

    message = delivery.message
    assert message["subject"] == "Order <script>x</script> & co shipped"
    assert message["text"] == "Hello Ada, order <script>x</script> & co is on its way."
    assert message["html"].startswith("<p>&lt;script&gt;x&lt;/script&gt; &amp; co</p>")
    assert "pbkdf2" not in message["html"] and "ada@example.com" not in message["html"]
    assert delivery.template_version == 1 and message["template"] == {"key": "orders", "locale": "en", "version": 1}


def test_settings_are_unreachable_even_from_a_stored_template(make_user):
    # Bypassing validation (e.g. a row written by hand) still cannot reach settings or internals.
    Template.objects.create(key="orders", channel="email", subject="{{ settings.SECRET_KEY }}x", body="{{ request }}")
    [delivery] = planner.plan(notify(make_user("ada")))
    assert delivery.message["subject"] == "x" and settings.SECRET_KEY not in str(delivery.message)


def test_without_a_template_the_literal_text_is_used(make_user):
    [delivery] = planner.plan(notify(make_user("ada")))
    assert delivery.message["subject"] == "Literal title" and delivery.message["text"] == "Literal body"
    assert delivery.template_version is None


def test_inapp_template_fills_title_and_body(make_user):
    make_template(channel="inapp", subject="Order {{ order_id }}", body="Tap to track {{ order_id }}")
    [delivery] = planner.plan(notify(make_user("ada"), routes=[["inapp"]], context={"order_id": "7"}))
    assert delivery.message["title"] == "Order 7" and delivery.message["body"] == "Tap to track 7"


def test_slack_blocks_are_rendered_with_slack_escaping(make_user):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ order_id }}* {{ note }}"}}]
    make_template(channel="slack", body="{{ order_id }}", blocks=blocks, variables=["order_id", "note"])
    context = {"order_id": "7", "note": "<!channel> & <http://x|y>"}
    content = render_content(notify(make_user("ada"), routes=[["slack"]], context=context), "slack")
    assert content["blocks"][0]["text"]["text"] == "*7* &lt;!channel&gt; &amp; &lt;http://x|y&gt;"


@pytest.mark.parametrize(
    "notification_locale, profile_locale, expected",
    [("pt-BR", "", "pt-BR"), ("pt-PT", "", "pt"), ("", "pt_br", "pt-BR"), ("de-AT", "", "en"), ("", "", "en"),
     ("fr", "pt-BR", "fr")],
)
def test_locale_fallback(make_user, notification_locale, profile_locale, expected):
    for locale in ("pt-BR", "pt", "en", "fr"):
        make_template(locale=locale, subject=f"[{locale}]", body="b", variables=[])
    ada = make_user("ada")
    RecipientProfile.objects.create(user=ada, locale=profile_locale)
    [delivery] = planner.plan(notify(ada, locale=notification_locale))
    assert delivery.message["subject"] == f"[{expected}]"


def test_template_key_of_the_notification_beats_the_category(make_user):
    make_template(key="welcome", subject="Welcome!", body="b", variables=[])
    make_template(subject="Category template", body="b", variables=[])
    [delivery] = planner.plan(notify(make_user("ada"), template_key="welcome"))
    assert delivery.message["subject"] == "Welcome!"


SEND = "/api/notifications/"


def test_send_with_a_template_and_its_context(app_api, make_user):
    make_user("ada")
    make_template()
    body = {"recipients": ["ada"], "category": "orders", "template": "orders", "context": {"order_id": "123"},
            "channels": ["email"], "locale": "en"}
    response = app_api.post(SEND, body, format="json")
    assert response.status_code == 202, response.content
    notification = Notification.objects.get()
    assert notification.title == "Order 123 shipped" and notification.context == {"order_id": "123"}
    assert notification.template_key == "orders"


def test_send_missing_a_declared_variable_is_a_400(app_api, make_user):
    make_user("ada")
    make_template(variables=["order_id", "eta"])
    body = {"recipients": ["ada"], "category": "orders", "title": "t", "context": {"order_id": 1},
            "channels": ["email"]}
    assert fields(app_api.post(SEND, body, format="json")) == {"context": ["Missing template variables: eta."]}
    # The category's template applies without naming it; another channel's template does not count.
    assert app_api.post(SEND, {**body, "channels": ["inapp"]}, format="json").status_code == 202


@pytest.mark.parametrize(
    "overrides, field",
    [({"template": "nope"}, "template"), ({"template": "no pe"}, "template"), ({"context": [1]}, "context"),
     ({"context": "x"}, "context"), ({"locale": "x" * 40}, "locale"), ({"title": None}, "title")],
)
def test_bad_template_sends_are_field_errors(app_api, make_user, overrides, field):
    make_user("ada")
    body = {"recipients": ["ada"], "category": "orders", "title": "t", **overrides}
    assert field in fields(app_api.post(SEND, body, format="json"))


def test_a_send_without_title_needs_a_template(app_api, make_user):
    make_user("ada")
    assert fields(app_api.post(SEND, {"recipients": ["ada"], "category": "orders"}, format="json")) == {
        "title": ["This field is required when no template applies."]
    }


def test_admin_edits_publish_versions_and_validate(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    form = {"key": "orders", "channel": "email", "locale": "en", "subject": "v1", "body": "one", "html_body": "",
            "blocks": "[]", "variables": ""}
    assert client.post("/admin/notifications/template/add/", form).status_code == 302
    first = Template.objects.get()
    changed = client.post(f"/admin/notifications/template/{first.id}/change/", {**form, "subject": "v2"})
    assert changed.status_code == 302
    assert list(Template.objects.order_by("version").values_list("subject", "version", "active")) == [
        ("v1", 1, False), ("v2", 2, True)
    ]
    refused = client.post("/admin/notifications/template/add/", {**form, "body": "{% debug %}"})
    assert refused.status_code == 200 and b"the tag &#x27;debug&#x27; is not allowed" in refused.content
    assert Template.objects.count() == 2


def test_size_arguments_of_filters_are_bounded(make_user):
    source = '{{ order_id|ljust:"1000000000" }}|{{ order_id|ljust:"5" }}|{{ 1.5|floatformat:"99999999" }}|'
    source += "{{ 1.25|floatformat }}"
    make_template(body=source)
    [delivery] = planner.plan(notify(make_user("ada"), context={"order_id": "7"}))
    assert delivery.message["text"] == "7|7    |1.5|1.3"
    form = template_form(key="x", body="{{ title|ljust }}")
    assert not form.is_valid() and "ljust requires 2 arguments" in str(form.errors)


def test_templates_fill_each_channels_layout(make_user):
    make_template(channel="sms", subject="", body="Code {{ order_id }} <b>", variables=["order_id"])
    make_template(channel="webhook", subject="Order {{ order_id }}", body="{{ order_id }} shipped")
    notification = notify(make_user("ada"), context={"order_id": "7"})
    assert render_content(notification, "sms")["text"] == "Code 7 <b>"
    event = render_content(notification, "webhook")["event"]["data"]
    assert (event["title"], event["body"]) == ("Order 7", "7 shipped")
