"""Operator-written templates, rendered in a sandbox.

The sandbox is its own Engine: no loaders (no file access), a curated set of tags and filters
(no include, extends, load, debug, url, csrf_token or autoescape tags; no safe filter), and a
context made only of plain JSON data copied from the notification, so a template reaches nothing
but that data. Django's parser itself refuses names starting with an underscore (`__class__`).
Templates are checked on save: syntax, forbidden tags and filters, loop and block nesting, and
every variable they use must be declared (or be one of BUILTIN_NAMES).

Every render runs on a budget (RenderBudget): each value a filter produces and each loop's output
is measured against NOTIFY_TEMPLATE_MAX_OUTPUT characters, loop iterations are counted against
NOTIFY_TEMPLATE_MAX_ITERATIONS, and the clock against NOTIFY_TEMPLATE_RENDER_SECONDS, so nested
`{% with v=message|add:message %}` or loops over loops stop early instead of filling memory.
"""

import functools
import json
import logging
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags, smartif
from django.template.base import FilterExpression, Node, NodeList, Variable
from django.template.defaulttags import ForNode, RegroupNode

from notifications.models import Channel, Template, templates_cache
from notifications.planning.text import slack_escape

logger = logging.getLogger(__name__)

ALLOWED_TAGS = [
    "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now", "regroup",
    "resetcycle", "spaceless", "templatetag", "verbatim", "widthratio", "with",
]
FORBIDDEN_FILTERS = {"safe", "safeseq", "pprint"}
# Names every template may use besides its declared variables.
BUILTIN_NAMES = {"title", "message", "category", "data", "recipient", "locale", "unsubscribe_url"}
ALWAYS_BOUND = {"forloop", "True", "False", "None", "var"}  # `var` is bound by {% filter %}
VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")

# Filters whose argument sizes their output: a width of a billion would exhaust a worker's memory.
BOUNDED_FILTERS = {"ljust", "rjust", "center", "floatformat", "stringformat", "truncatechars", "wordwrap"}
MAX_FILTER_NUMBER = 1000


def bounded(function):
    """The filter, except that an argument naming a number over MAX_FILTER_NUMBER leaves the value as is."""

    @functools.wraps(function)  # keeps the flags, and __wrapped__ for Django's argument check
    def guarded(value, *args):
        if any(int(number) > MAX_FILTER_NUMBER for arg in args for number in re.findall(r"\d+", str(arg))):
            return value
        return function(value, *args)

    return guarded


class TemplateProblem(ValueError):
    pass


class RenderLimitExceeded(TemplateProblem):
    """A render went over its budget of output, loop iterations or time."""


class RenderBudget:
    def __init__(self, seconds=None):
        self.deadline = time.monotonic() + (seconds or settings.NOTIFY_TEMPLATE_RENDER_SECONDS)
        self.max_output = settings.NOTIFY_TEMPLATE_MAX_OUTPUT
        self.iterations_left = settings.NOTIFY_TEMPLATE_MAX_ITERATIONS

    def check_time(self):
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded("The template took too long to render.")

    def spend(self, value):
        """A value the template produced: refused when it is larger than any output may be."""
        if isinstance(value, (str, list, tuple, dict)) and len(value) > self.max_output:
            raise RenderLimitExceeded(f"The template produced more than {self.max_output} characters.")
        self.check_time()
        return value

    def iteration(self):
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise RenderLimitExceeded(
                f"The template's loops ran more than {settings.NOTIFY_TEMPLATE_MAX_ITERATIONS} times."
            )
        self.check_time()


_budget = ContextVar("render_budget", default=None)


@contextmanager
def render_budget(seconds=None):
    """Within the block, renders share one budget (a new one unless one is running already)."""
    if _budget.get() is not None and seconds is None:
        yield _budget.get()
        return
    token = _budget.set(RenderBudget(seconds))
    try:
        yield _budget.get()
    finally:
        _budget.reset(token)


def budget():
    return _budget.get() or RenderBudget()


def charged(function):
    """The filter, its result measured against the running render's budget."""

    @functools.wraps(function)  # keeps the flags, and __wrapped__ for Django's argument check
    def measured(value, *args, **kwargs):
        return budget().spend(function(value, *args, **kwargs))

    return measured


class Metered(list):
    """A loop's sequence: every item taken counts one iteration against the budget."""

    def __iter__(self):
        for item in super().__iter__():
            budget().iteration()
            yield item

    def __reversed__(self):
        for item in super().__reversed__():
            budget().iteration()
            yield item


class MeteredSequence:
    def __init__(self, expression):
        self.expression = expression

    def resolve(self, context, ignore_failures=False):
        values = self.expression.resolve(context, ignore_failures=ignore_failures)
        return Metered(values) if hasattr(values, "__iter__") else values


class BoundedForNode(ForNode):
    def render(self, context):
        return budget().spend(super().render(context))


def bounded_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.__class__ = BoundedForNode
    node.sequence = MeteredSequence(node.sequence)
    return node


sandbox_library = Library()
sandbox_library.tags = {name: defaulttags.register.tags[name] for name in ALLOWED_TAGS}
sandbox_library.tags["for"] = bounded_for
sandbox_library.filters = {
    name: charged(bounded(function) if name in BOUNDED_FILTERS else function)
    for name, function in defaultfilters.register.filters.items()
    if name not in FORBIDDEN_FILTERS
}


class SandboxEngine(Engine):
    default_builtins = []


engine = SandboxEngine(loaders=[], libraries={}, autoescape=True, debug=False, string_if_invalid="")
engine.template_builtins = [sandbox_library]


@functools.lru_cache(maxsize=1024)
def compile_source(source):
    """A compiled template, or TemplateProblem with an operator-readable message."""
    try:
        return engine.from_string(source)
    except TemplateSyntaxError as error:
        message = str(error)
        if match := re.search(r"Invalid block tag on line (\d+): '([^']*)'", message):
            message = f"Line {match[1]}: the tag '{match[2]}' is not allowed or not known."
        elif match := re.search(r"Invalid filter: '([^']*)'", message):
            message = f"The filter '{match[1]}' is not allowed or not known."
        raise TemplateProblem(message) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise TemplateProblem(f"Invalid template: {error}") from None


def names_in(nodelist):
    """(used, bound): root names a compiled template looks up, and names its own tags bind."""
    used, bound = set(), set(ALWAYS_BOUND)

    def visit(value):
        if isinstance(value, MeteredSequence):
            visit(value.expression)
        elif isinstance(value, Variable):
            if value.lookups:
                used.add(value.lookups[0])
        elif isinstance(value, FilterExpression):
            visit(value.var)
            for _function, arguments in value.filters:
                for is_lookup, argument in arguments:
                    if is_lookup:
                        visit(argument)
        elif isinstance(value, (NodeList, list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            bound.update(key for key in value if isinstance(key, str))
            for item in value.values():
                visit(item)
        elif isinstance(value, smartif.TokenBase):
            for part in ("value", "first", "second"):
                visit(getattr(value, part, None))
        elif isinstance(value, Node):
            for name in ("loopvars", "asvar", "variable_name", "var_name"):
                names = getattr(value, name, None)
                bound.update([names] if isinstance(names, str) else names or ())
            for attribute, item in vars(value).items():
                # regroup's `by` expression is looked up on each item, not in the context.
                if not (isinstance(value, RegroupNode) and attribute == "expression"):
                    visit(item)

    visit(nodelist)
    return used, bound


def nesting(nodelist, loops=0, blocks=0):
    """(deepest loop nesting, deepest block nesting) of a compiled template."""
    deepest = (loops, blocks)
    for node in nodelist:
        inner_loops = loops + isinstance(node, ForNode)
        for value in vars(node).values():
            children = [value] if isinstance(value, NodeList) else [
                item for pair in value if isinstance(pair, tuple) for item in pair if isinstance(item, NodeList)
            ] if isinstance(value, list) else []
            for child in children:
                found = nesting(child, inner_loops, blocks + 1)
                deepest = (max(deepest[0], found[0]), max(deepest[1], found[1]))
        deepest = (max(deepest[0], inner_loops), deepest[1])
    return deepest


def source_errors(source, declared):
    """Problems of one template source: syntax, forbidden tags, nesting, undeclared variables."""
    if not source:
        return []
    try:
        compiled = compile_source(source)
    except TemplateProblem as problem:
        return [str(problem)]
    loops, blocks = nesting(compiled.nodelist)
    if loops > settings.NOTIFY_TEMPLATE_MAX_LOOP_NESTING:
        return [f"Loops nest {loops} deep; at most {settings.NOTIFY_TEMPLATE_MAX_LOOP_NESTING} are allowed."]
    if blocks > settings.NOTIFY_TEMPLATE_MAX_NESTING:
        return [f"Tags nest {blocks} deep; at most {settings.NOTIFY_TEMPLATE_MAX_NESTING} are allowed."]
    used, bound = names_in(compiled.nodelist)
    unknown = sorted(used - bound - BUILTIN_NAMES - set(declared))
    if unknown:
        return [f"Unknown variables: {', '.join(unknown)}. Declare them in 'variables'."]
    return []


def block_strings(blocks):
    if isinstance(blocks, str):
        yield blocks
    elif isinstance(blocks, list):
        for item in blocks:
            yield from block_strings(item)
    elif isinstance(blocks, dict):
        for item in blocks.values():
            yield from block_strings(item)


def template_errors(subject, body, html_body, blocks, variables):
    """Field errors of a template's parts, {} when it may be saved."""
    errors = {}
    bad_names = [name for name in variables or () if not isinstance(name, str) or not VARIABLE_NAME.match(name)]
    if bad_names:
        errors["variables"] = [f"Not a variable name: {name!r}." for name in bad_names[:10]]
    declared = [name for name in variables or () if isinstance(name, str)]
    for name, source in (("subject", subject), ("body", body), ("html_body", html_body)):
        if problems := source_errors(source, declared):
            errors[name] = problems
    if blocks and not (isinstance(blocks, list) and all(isinstance(block, dict) for block in blocks)):
        errors["blocks"] = ["Blocks must be a list of objects (Slack Block Kit)."]
    elif blocks:
        problems = [problem for source in block_strings(blocks) for problem in source_errors(source, declared)]
        if problems:
            errors["blocks"] = list(dict.fromkeys(problems))
    return errors


def normalize_locale(locale):
    """`pt_br` -> `pt-BR`: language lower case, a two-letter region upper case."""
    parts = (locale or "").replace("_", "-").split("-")
    parts = [parts[0].lower()] + [part.upper() if len(part) == 2 else part for part in parts[1:]]
    return "-".join(part for part in parts if part)


def locale_chain(notification):
    """The notification's locale (else the recipient's), its language, then the default."""
    chain = []
    for locale in (notification.locale or profile_locale(notification.recipient), settings.NOTIFY_DEFAULT_LOCALE):
        if locale:
            locale = normalize_locale(locale)
            chain += [locale, locale.split("-")[0]]
    return list(dict.fromkeys(chain))


def profile_locale(user):
    try:
        return user.profile.locale
    except ObjectDoesNotExist:
        return ""


def active_templates(key, channel):
    """{locale: template} of the active templates of `key` for `channel`, from the process cache
    (NOTIFY_REFERENCE_TTL, cleared at once by a change saved in this process)."""
    return templates_cache.get(("active", key, channel), lambda: {
        t.locale: t for t in Template.objects.filter(key=key, channel=channel, active=True)})


def find_template(key, channel, chain):
    templates = active_templates(key, channel)
    for locale in chain:
        if locale in templates:
            return templates[locale]
    return None


def plain(value):
    """A deep copy made only of JSON types: the only thing a template ever sees."""
    return json.loads(json.dumps(value, default=str))


def context_for(notification, extra=None):
    recipient = notification.recipient
    builtins = {
        "title": notification.title,
        "message": notification.body,
        "category": notification.category_id,
        "data": notification.payload_data or {},
        "recipient": {
            "username": recipient.get_username(),
            "first_name": recipient.first_name,
            "last_name": recipient.last_name,
        },
        "locale": notification.locale,
        **(extra or {}),
    }
    return plain({**(notification.payload_context or {}), **builtins})


@dataclass
class Rendered:
    key: str
    locale: str
    version: int
    subject: str
    body: str
    html: str = ""
    blocks: list = field(default_factory=list)


def render(template, context, seconds=None):
    """All parts of a template, on one budget (RenderLimitExceeded when it runs out)."""
    with render_budget(seconds) as spending:
        text_context = Context(context, autoescape=False)
        subject = compile_source(template.subject).render(text_context) if template.subject else ""
        body = spending.spend(compile_source(template.body).render(Context(context, autoescape=False)))
        html = spending.spend(compile_source(template.html_body).render(Context(context)) if template.html_body else "")
        blocks = render_blocks(template.blocks, slack_escape(context)) if template.blocks else []
    subject = " ".join(spending.spend(subject).split())
    return Rendered(template.key, template.locale, template.version, subject, body, html, blocks)


def render_blocks(value, context):
    if isinstance(value, str):
        return budget().spend(compile_source(value).render(Context(context, autoescape=False)))
    if isinstance(value, list):
        return [render_blocks(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_blocks(item, context) for key, item in value.items()}
    return value


def render_for(notification, channel, extra=None):
    """The notification rendered with its template for this channel, or None when it has none."""
    key = notification.template_key or notification.category_id
    template = find_template(key, channel, locale_chain(notification))
    if template is None:
        return None
    try:
        return render(template, context_for(notification, extra))
    except (SoftTimeLimitExceeded, MemoryError):
        raise  # the task's own limits: never mistaken for a bad template
    except RenderLimitExceeded as problem:
        logger.warning("template %s over its render budget (%s), falling back to the literal text", template, problem)
        return None
    except Exception:  # a template that passed validation should render; never lose the message
        logger.exception("template %s failed to render, falling back to the literal text", template)
        return None


def variables_by_channel(key):
    """{channel: variables its active templates of `key` use (any locale)}; from the process cache."""
    def load():
        found = {}
        for channel, variables in Template.objects.filter(key=key, active=True).values_list("channel", "variables"):
            found.setdefault(channel, set()).update(variables)
        return found

    return templates_cache.get(key, load)


def missing_variables(key, channels, context):
    variables = variables_by_channel(key)
    return sorted({name for channel in channels for name in variables.get(channel, ())} - set(context))


def validate_send(attrs):
    """Field errors of a send's template part ({} when fine); fills in a title from the template."""
    key = attrs.get("template_key") or attrs["category"].key
    # `channels` holds channels and fallback chains; without it, routing may pick any channel.
    requested = [c for item in attrs.get("channels") or [] for c in ([item] if isinstance(item, str) else item)]
    channels = requested or settings.NOTIFY_CHANNELS
    context = attrs.get("context") or {}
    if attrs.get("template_key") and not variables_by_channel(key):
        return {"template": [f"Unknown template '{key}'."]}
    if missing := missing_variables(key, channels, context):
        return {"context": [f"Missing template variables: {', '.join(missing)}."]}
    if not attrs.get("title"):
        try:
            title = preview_title(key, channels, context, attrs.get("locale"))
        except RenderLimitExceeded as problem:
            return {"context": [f"The template's subject cannot be rendered with this context: {problem}"]}
        if title is None:
            return {"title": ["This field is required when no template applies."]}
        attrs["title"] = title
    return {}


def preview_title(key, channels, context, locale):
    chain = [normalize_locale(locale), normalize_locale(locale).split("-")[0]] if locale else []
    chain += [settings.NOTIFY_DEFAULT_LOCALE]
    for channel in sorted(channels, key=lambda c: c != Channel.INAPP):
        templates = active_templates(key, channel)
        template = next((templates[loc] for loc in chain if loc in templates), None)
        template = template or next(iter(templates.values()), None)
        if template is not None:
            title = render_subject(template, context)
            return title[:500] or key
    return None


def render_subject(template, context):
    if not template.subject:
        return ""
    with render_budget() as spending:
        subject = compile_source(template.subject).render(Context(plain(context), autoescape=False))
        return " ".join(spending.spend(subject).split())


class VersionConflict(Exception):
    pass


def publish(key, channel, locale, **content):
    """A new active version of (key, channel, locale); the previous active one is kept, inactive."""
    locale = normalize_locale(locale)
    try:
        with transaction.atomic():
            family = Template.objects.select_for_update().filter(key=key, channel=channel, locale=locale)
            latest = family.order_by("-version").first()
            family.filter(active=True).update(active=False)
            return Template.objects.create(
                key=key, channel=channel, locale=locale, version=(latest.version + 1) if latest else 1,
                active=True, **content,
            )
    except IntegrityError as error:
        raise VersionConflict(f"{key}/{channel}/{locale} was changed at the same time; try again.") from error


def sample_context(template):
    """Placeholders for what a send would fill in, for previews."""
    return {
        "title": "[title]",
        "message": "[message]",
        "category": template.key,
        "data": {},
        "recipient": {"username": "[username]", "first_name": "[first_name]", "last_name": "[last_name]"},
        "locale": template.locale,
        "unsubscribe_url": "https://example.invalid/unsubscribe",
    }
