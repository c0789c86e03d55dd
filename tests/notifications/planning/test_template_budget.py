"""The template sandbox renders on a budget: output, loop iterations, time and nesting are
bounded; the task's own time limit and MemoryError are never swallowed as "a bad template"."""

import signal
import time
import tracemalloc

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from notifications.planning import planner, templating
from notifications.models import Notification, Template

pytestmark = pytest.mark.django_db

URL = "/api/templates/"


@pytest.fixture
def staff(user_api, make_user):
    return user_api(make_user("ops", is_staff=True))


def doubling(levels, start="message"):
    """{% with %} nested `levels` deep, each doubling `start`: 2**levels copies."""
    names = [f"v{i}" for i in range(levels)]
    opening = "".join(
        f"{{% with {name}={previous}|add:{previous} %}}" for previous, name in zip([start, *names], names)
    )
    return opening + f"{{{{ {names[-1]} }}}}" + "{% endwith %}" * levels


def nested_loops(depth, over="data.items"):
    return ("{% for a in " + over + " %}") * depth + "x" + "{% endfor %}" * depth


def notification_for(user, **extra):
    return Notification.objects.create(recipient=user, category_id="orders", title="Literal title",
                                       body="m" * 1000, routes=[["email"]], **extra)


def test_thirty_doublings_are_refused_on_save(staff):
    answer = staff.post(URL, {"key": "orders", "channel": "email", "subject": "s", "body": doubling(30)}, format="json")
    assert answer.status_code == 400
    assert "nest 30 deep" in answer.json()["error"]["fields"]["body"][0]
    assert not Template.objects.exists()


def test_three_nested_loops_are_refused_on_save(staff):
    answer = staff.post(URL, {"key": "orders", "channel": "email", "subject": "s", "body": nested_loops(3)},
                        format="json")
    assert answer.status_code == 400 and "Loops nest 3 deep" in answer.json()["error"]["fields"]["body"][0]


def test_a_stored_doubling_template_stops_at_the_output_cap_and_falls_back(make_user, settings):
    """A template already in the table (written before the checks, or straight to the database)
    stops at the cap: the message goes out with the literal text, memory stays small."""
    Template.objects.create(key="orders", channel="email", subject="s", body=doubling(30))
    notification = notification_for(make_user("ada"))
    tracemalloc.start()
    started = time.monotonic()
    try:
        [delivery] = planner.plan(notification)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.0f} MB"
    assert delivery.message["subject"] == "Literal title" and "template" not in delivery.message


def test_loops_over_send_data_stop_at_the_iteration_budget(make_user, settings):
    settings.NOTIFY_TEMPLATE_MAX_ITERATIONS = 5000
    Template.objects.create(key="orders", channel="email", subject="s", body=nested_loops(4))  # 1000**4
    notification = notification_for(make_user("ada"), data={"items": list(range(1000))})
    started = time.monotonic()
    [delivery] = planner.plan(notification)
    assert time.monotonic() - started < 2
    assert delivery.message["subject"] == "Literal title"


def test_a_loop_over_a_string_is_metered_too(settings):
    settings.NOTIFY_TEMPLATE_MAX_ITERATIONS = 100
    template = Template(key="k", channel="email", subject="", body="{% for c in message %}{{ c }}{% endfor %}")
    with pytest.raises(templating.RenderLimitExceeded, match="more than 100 times"):
        templating.render(template, {"message": "x" * 500})
    assert templating.render(template, {"message": "x" * 50}).body == "x" * 50


def test_a_soft_time_limit_inside_a_render_reaches_the_task(make_user, settings):
    """Celery's soft time limit arrives as a signal whose handler raises SoftTimeLimitExceeded
    wherever the worker is; inside a template render it must not become "fall back to text"."""
    settings.NOTIFY_TEMPLATE_MAX_ITERATIONS = 10**12
    settings.NOTIFY_TEMPLATE_RENDER_SECONDS = 60
    Template.objects.create(key="orders", channel="email", subject="s", body=nested_loops(2, over="data.items"))
    notification = notification_for(make_user("ada"), data={"items": list(range(20000))})

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            planner.plan(notification)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_memory_error_is_not_swallowed(make_user, monkeypatch):
    Template.objects.create(key="orders", channel="email", subject="s", body="{{ message|upper }}")
    notification = notification_for(make_user("ada"))

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(templating, "context_for", out_of_memory)
    with pytest.raises(MemoryError):
        planner.plan(notification)


def test_a_preview_is_cut_at_its_time_limit(staff, settings):
    settings.NOTIFY_TEMPLATE_MAX_ITERATIONS = 10**12
    settings.NOTIFY_TEMPLATE_RENDER_SECONDS = 0.5
    template = Template.objects.create(key="orders", channel="email", subject="s",
                                       body=nested_loops(2, over="items"), variables=["items"])
    started = time.monotonic()
    answer = staff.post(f"{URL}{template.id}/preview/", {"context": {"items": list(range(5000))}}, format="json")
    assert time.monotonic() - started < 3
    assert answer.status_code == 400
    assert "took too long" in answer.json()["error"]["fields"]["context"][0]


def test_a_send_whose_template_subject_blows_up_is_a_400(app_api, make_user, settings):
    make_user("ada")
    Template.objects.create(key="orders", channel="inapp", subject=doubling(8, start="word"), body="b",
                            variables=["word"])
    answer = app_api.post("/api/notifications/", {"recipients": ["ada"], "category": "orders",
                                                  "context": {"word": "w" * 1000}}, format="json")
    assert answer.status_code == 400
    assert "more than" in answer.json()["error"]["fields"]["context"][0]
    assert not Notification.objects.exists()
