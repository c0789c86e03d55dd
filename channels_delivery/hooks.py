"""Callbacks from the channels to the domain, so a channel module never writes contact points.

The domain registers a listener at start-up (notifications.apps); a channel reports a contact
point that the provider says is gone for good (push 404/410, a removed Slack webhook, a webhook
endpoint answering 410 Gone).
"""

import logging

logger = logging.getLogger(__name__)

# Called with (kind, contact_point_id, reason); kind is "push", "slack" or "webhook".
contact_point_gone_listeners = []


def contact_point_gone(kind, contact_point_id, reason):
    logger.info("%s contact point %s is gone: %s", kind, contact_point_id, reason)
    for listener in contact_point_gone_listeners:
        listener(kind, contact_point_id, reason)
