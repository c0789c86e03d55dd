from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "notifications.realtime"
    label = "realtime"
    verbose_name = "Real-time inbox"

    def ready(self):
        from channels_delivery import inapp

        from .events import publish_inapp_delivery

        # The in-app worker pushes each delivered notification to the user's open connections.
        if publish_inapp_delivery not in inapp.inbox_listeners:
            inapp.inbox_listeners.append(publish_inapp_delivery)
