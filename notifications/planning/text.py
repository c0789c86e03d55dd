"""Small text rules shared by templates and channel layouts."""


def clip(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(value):
    """Slack's mrkdwn treats only &, < and > as control characters: data must not forge links
    or mentions. Strings are escaped; lists and dicts are escaped item by item."""
    if isinstance(value, str):
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if isinstance(value, list):
        return [slack_escape(item) for item in value]
    if isinstance(value, dict):
        return {key: slack_escape(item) for key, item in value.items()}
    return value
