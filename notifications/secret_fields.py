"""A field for credentials that are not encrypted at rest yet.

NOT ENCRYPTED: a stand-in until notifications.encryption (branch `encrypt`: EncryptedTextField,
MultiFernet keys from NOTIFY_ENCRYPTION_KEYS) is on main; then SecretJSONField derives from
EncryptedTextField instead of TextField, and a data migration seals the existing rows. Until then
it only keeps the value out of reprs and admin lists, and reads and writes JSON.
"""

import json

from django.db import models


class SecretJSONField(models.TextField):
    """A JSON object kept as text (so an encrypting text field can replace the base class)."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return {}
        return json.loads(value)

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        return json.loads(value) if value else {}

    def get_prep_value(self, value):
        return json.dumps(value or {}, separators=(",", ":"), sort_keys=True)
