"""Whether a channel may carry a category to a user now, and why.

Resolution, the first rule that has an answer wins:
1. a critical category always goes out: stored offs are ignored, quiet hours too;
2. the user's own switch for this category and channel, then the user's switch for the channel;
3. the user's groups (roles): a switch for this category and channel, then one for the channel.
   When groups disagree, any group switching it on wins (a role grants a channel; it never
   silences another role's);
4. the system defaults (settings.NOTIFY_CHANNELS_OFF_BY_DEFAULT and
   NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT); everything else is on.
A switched-on channel inside the user's quiet hours is deferred to the end of the window.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from notifications.models import ChannelPreference, GroupPreference, QuietHours
from notifications.models import categories as all_categories
from notifications.planning.quiet_hours import is_known_time_zone, window_end

SEND, SKIP, DEFER = "send", "skip", "defer"


@dataclass(frozen=True)
class Decision:
    action: str  # SEND, SKIP or DEFER
    reason: str
    until: datetime | None = None


def scope(category):
    return f" for category {category}" if category else ""


class PreferenceBook:
    """All a batch of recipients' switches, groups and quiet hours, read in five queries."""

    def __init__(self, user_switches, user_groups, group_switches, quiet_hours, critical):
        self.user_switches = user_switches  # (user_id, category or None, channel) -> bool
        self.user_groups = user_groups  # user_id -> [group_id]
        self.group_switches = group_switches  # (group_id, category or None, channel) -> (bool, group name)
        self.quiet_hours = quiet_hours  # user_id -> QuietHours
        self.critical = critical  # keys of critical categories

    @classmethod
    def load(cls, user_ids):
        user_ids = set(user_ids)
        user_switches = {
            (user_id, category, channel): enabled
            for user_id, category, channel, enabled in ChannelPreference.objects.filter(
                user_id__any=user_ids
            ).values_list("user_id", "category_id", "channel", "enabled")
        }
        user_groups = defaultdict(list)
        memberships = get_user_model().groups.through.objects.filter(user_id__any=user_ids)
        for user_id, group_id in memberships.values_list("user_id", "group_id"):
            user_groups[user_id].append(group_id)
        group_ids = {group_id for groups in user_groups.values() for group_id in groups}
        group_switches = {
            (group_id, category, channel): (enabled, name)
            for group_id, category, channel, enabled, name in GroupPreference.objects.filter(
                group_id__in=group_ids
            ).values_list("group_id", "category_id", "channel", "enabled", "group__name")
        }
        quiet_hours = {q.user_id: q for q in QuietHours.objects.filter(user_id__any=user_ids, enabled=True)}
        critical = {key for key, category in all_categories().items() if category.critical}
        return cls(user_switches, user_groups, group_switches, quiet_hours, critical)

    def switch(self, user_id, category, channel):
        """(enabled, who): the switch that applies and who set it, e.g. 'by group admins'."""
        for key in (category, None):
            enabled = self.user_switches.get((user_id, key, channel))
            if enabled is not None:
                return enabled, f"{scope(key)} by user"
        for key in (category, None):
            votes = [
                self.group_switches[(group_id, key, channel)]
                for group_id in self.user_groups.get(user_id, ())
                if (group_id, key, channel) in self.group_switches
            ]
            if votes:
                granting = sorted(name for enabled, name in votes if enabled)
                name = granting[0] if granting else sorted(name for _, name in votes)[0]
                return bool(granting), f"{scope(key)} by group {name}"
        off_for_category = settings.NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT.get(category, ())
        if channel in off_for_category:
            return False, f"{scope(category)} by default"
        return channel not in settings.NOTIFY_CHANNELS_OFF_BY_DEFAULT, " by default"

    def is_critical(self, category):
        return category in self.critical

    def decide(self, user_id, category, channel, now):
        if self.is_critical(category):
            return Decision(SEND, f"category {category} is critical")
        enabled, who = self.switch(user_id, category, channel)
        if not enabled:
            return Decision(SKIP, f"switched off{who}")
        quiet_hours = self.quiet_hours.get(user_id)
        until = window_end(quiet_hours, now)
        if until is not None:
            return Decision(DEFER, f"quiet hours until {local_time(until, quiet_hours.timezone)}", until)
        return Decision(SEND, f"switched on{who}")

    def decide_notification(self, notification, channels, now):
        """Decisions per channel for one notification, with its deferral history applied.

        A notification already deferred once is not deferred again when it comes back at the end
        of its window; one that would expire before the window ends is skipped instead.
        """
        decisions = {}
        for channel in channels:
            decision = self.decide(notification.recipient_id, notification.category_id, channel, now)
            if decision.action == DEFER:
                if was_deferred(notification, now):
                    decision = Decision(SEND, "quiet hours over (deferred once)")
                elif notification.expires_at and notification.expires_at <= decision.until:
                    decision = Decision(SKIP, f"{decision.reason}, after the notification expires")
            decisions[channel] = decision
        return decisions


def was_deferred(notification, now):
    return any(
        event.get("event") == "deferred" and datetime.fromisoformat(event["until"]) <= now
        for event in notification.trace or ()
    )


def local_time(moment, zone_name):
    zone = ZoneInfo(zone_name) if is_known_time_zone(zone_name) else ZoneInfo("UTC")
    return f"{moment.astimezone(zone).isoformat(timespec='minutes')} ({zone_name})"


def decide(user, category, channel, now=None):
    """The decision for one user, category (key or Category) and channel; loads what it needs."""
    key = getattr(category, "key", category)
    return PreferenceBook.load([user.pk]).decide(user.pk, key, channel, now or timezone.now())
