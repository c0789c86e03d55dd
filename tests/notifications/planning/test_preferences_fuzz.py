"""Random JSON at the preference, template and send endpoints: always an answer, never a 5xx."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.models import Template

pytestmark = pytest.mark.django_db

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
template_text = st.text(alphabet="{}%|._ abc\"'#", max_size=30) | st.sampled_from([
    "{% for x in %}", "{{ a|default: }}", "{% with %}", "{% cycle %}", "{% widthratio a b c %}", "{% now %}",
    "{{ a.b.c|add:x }}",
])
quiet_hours = st.fixed_dictionaries(
    {"timezone": st.text(max_size=30), "start": st.text(max_size=6), "end": json_values}
)
preference_bodies = st.fixed_dictionaries({}, optional={
    "email": json_values, "inApp": json_values, "channels": json_values | st.just({"orders": {"sms": False}}),
    "quietHours": json_values | quiet_hours,
})
FUZZ = settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture
def callers(make_user, user_api):
    Template.objects.create(key="orders", channel="email", subject="s {{ a }}", body="b", variables=["a"])
    return user_api(make_user("ada")), user_api(make_user("ops", is_staff=True))


def test_preferences_never_fail(callers):
    @FUZZ
    @given(body=preference_bodies | json_values)
    def run(body):
        for api in callers:
            assert api.put("/api/notifications/preferences/", body, format="json").status_code in (200, 400)

    run()


def test_templates_and_previews_never_fail(callers):
    _user, staff = callers
    template_id = Template.objects.get().id

    @FUZZ
    @given(subject=template_text, body=template_text, blocks=json_values, variables=json_values, context=json_values)
    def run(subject, body, blocks, variables, context):
        payload = {
            "key": "orders", "channel": "slack", "subject": subject, "body": body, "blocks": blocks,
            "variables": variables,
        }
        assert staff.post("/api/templates/", payload, format="json").status_code in (201, 400)
        preview = staff.post(f"/api/templates/{template_id}/preview/", {"context": context}, format="json")
        assert preview.status_code in (200, 400)

    run()


def test_sends_with_templates_never_fail(app_api, callers):
    @FUZZ
    @given(template=json_values, context=json_values, locale=json_values)
    def run(template, context, locale):
        body = {"recipients": ["ada"], "category": "orders", "template": template, "context": context, "locale": locale}
        assert app_api.post("/api/notifications/", body, format="json").status_code in (202, 400)

    run()
