from django.conf import settings
from django.db import models

from notifications.models import ContactPoint


class MobileDevice(ContactPoint):
    """A phone app's token for native push (FCM HTTP v1, or APNs)."""

    class Platform(models.TextChoices):
        ANDROID = "android"
        IOS = "ios"

    class Provider(models.TextChoices):
        FCM = "fcm"  # a Firebase registration token (Android, or iOS through Firebase)
        APNS = "apns"  # an APNs device token (iOS, straight through Apple)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mobile_devices")
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.FCM)
    token = models.CharField(max_length=1024)
    platform = models.CharField(max_length=16, choices=Platform.choices, blank=True)

    class Meta:
        # A token names one app install; when another user signs in on it, the row moves to them.
        constraints = [models.UniqueConstraint(fields=["provider", "token"], name="mobile_device_unique")]

    def __str__(self):
        return f"{self.provider} device of {self.user}"
