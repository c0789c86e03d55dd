from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "notifications.realtime"
    label = "realtime"
    verbose_name = "Real-time inbox"

    def ready(self):
        from channels_delivery.channels.inapp import providers
        from notifications import inbox_events
        from notifications.realtime import events

        # The in-app worker pushes each delivered notification to the user's open connections;
        # every mark (REST or WebSocket) reaches all of them too.
        if events.publish_inapp_deliveries not in providers.inbox_listeners:
            providers.inbox_listeners.append(events.publish_inapp_deliveries)
        inbox_events.mark_changed.connect(events.on_mark_changed, dispatch_uid="realtime-mark")
        inbox_events.marks_changed.connect(events.on_marks_changed, dispatch_uid="realtime-marks")
