"""What happens to an inbox, for whoever shows it live: the realtime app connects here, so the
API (which marks) and the in-app channel (which stores) never import the WebSocket tier."""

from django.dispatch import Signal

# sent with notification=<Notification>, status=("read", "unread", "seen", ...), at=<datetime|None>
mark_changed = Signal()
# sent with user_id=<int>: several marks changed at once (read-all)
marks_changed = Signal()
