"""Encryption at rest: credentials always, and the content of categories marked sensitive.

Values are sealed with cryptography's MultiFernet (AES-128-CBC + HMAC-SHA256, a timestamped
token) under the keys in NOTIFY_ENCRYPTION_KEYS: the first key encrypts, every key decrypts, so
a key is rotated by putting the new one first and re-encrypting (`manage.py rotate_encryption_keys`)
while every process keeps reading both.

Two kinds of field:
- `EncryptedTextField` / `EncryptedJSONField`: always sealed (webhook secrets, Slack URLs, auth
  headers). Tokens differ on every write, so only `isnull` lookups are offered: an equality filter
  would silently find nothing.
- `SealableCharField` / `SealableTextField` / `SealableJSONField`: sealed when the row's model says
  so (`sealed_content(instance)`, e.g. its category is sensitive), plain otherwise; reads accept both.
  The decision is taken in `pre_save`, which `save()`, `bulk_create()` and the broadcast's
  INSERT ... SELECT call; `SealingQuerySet.bulk_update()` applies it there too.

A value written before encryption (a plain string that is not a Fernet token) is read as it is,
so a process still running old code during a deploy loses nothing; `rotate_encryption_keys`
seals such rows.
"""

import base64
import functools
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.db import models

# Every Fernet token starts with the version byte 0x80, which base64url spells "gAAAAA".
TOKEN_PREFIX = "gAAAAA"


class UnreadableValue(Exception):
    """A stored token that none of the configured keys opens (a key was dropped too early)."""


def derived_development_key(secret_key):
    """The key used when NOTIFY_ENCRYPTION_KEYS is empty: fine on a laptop, refused by the deploy check."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"notify-encryption:" + secret_key.encode()).digest()).decode()


@functools.lru_cache(maxsize=8)
def keyring_for(keys):
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            "NOTIFY_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)"
        ) from error


def keyring():
    return keyring_for(tuple(settings.NOTIFY_ENCRYPTION_KEYS or [derived_development_key(settings.SECRET_KEY)]))


def seal(text):
    return keyring().encrypt(text.encode()).decode()


def is_token(value):
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def unseal(value):
    """The plaintext of a token; a value that is not a token is returned as it is (written before
    encryption)."""
    if not is_token(value):
        return value
    try:
        return keyring().decrypt(value.encode()).decode()
    except InvalidToken as error:
        raise UnreadableValue("a sealed value no configured key opens; is a key missing from NOTIFY_ENCRYPTION_KEYS?") from error


def rotate(value):
    """The token re-encrypted under the first key (a plain legacy value gets sealed)."""
    if not is_token(value):
        return seal(value)
    return keyring().rotate(value.encode()).decode()


class Sealed:
    """A value on its way to the database that must be encrypted (see SealableMixin.pre_save)."""

    __slots__ = ["value"]

    def __init__(self, value):
        self.value = value


# --- always encrypted ---------------------------------------------------------------------

class EncryptedMixin:
    """Stored as a Fernet token in a text column; the Python value is the plaintext."""

    def db_type(self, connection):
        return "text"

    def cast_db_type(self, connection):
        return "text"

    def rel_db_type(self, connection):
        return "text"

    def to_text(self, value):
        return value

    def from_text(self, text):
        return text

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        return seal(self.to_text(value))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return self.from_text(unseal(value))

    def get_lookup(self, lookup_name):
        # Tokens are randomised: equality or containment on ciphertext can only mislead.
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def get_transform(self, name):
        return None


class EncryptedTextField(EncryptedMixin, models.TextField):
    """Text kept secret at rest (a signing secret, a webhook URL that is a credential)."""

    def to_python(self, value):
        return value if value is None else str(value)


class EncryptedJSONField(EncryptedMixin, models.JSONField):
    """JSON kept secret at rest (e.g. auth headers): the whole document is one token."""

    def to_text(self, value):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def from_text(self, text):
        return json.loads(text)

    def get_prep_value(self, value):
        return value

    def validate(self, value, model_instance):
        models.Field.validate(self, value, model_instance)


# --- encrypted when the row's content is sensitive -------------------------------------------

class SealableMixin:
    """Sealed when `model.sealed_content(instance)` is true at save time; reads accept either."""

    def pre_save(self, model_instance, add):
        value = super().pre_save(model_instance, add)
        if value is not None and not isinstance(value, Sealed) and model_instance.sealed_content():
            return Sealed(value)
        return value

    def get_db_prep_save(self, value, connection):
        if isinstance(value, Sealed):
            return seal(self.sealable_text(value.value))
        return super().get_db_prep_save(value, connection)

    def sealable_text(self, value):
        return value

    def from_db_value(self, value, expression, connection):
        return value if value is None else unseal(value)


class SealableCharField(SealableMixin, models.CharField):
    """max_length bounds the plaintext; the column is text because a token is longer."""

    def db_type(self, connection):
        return "text"

    def cast_db_type(self, connection):
        return "text"


class SealableTextField(SealableMixin, models.TextField):
    pass


class SealableJSONField(SealableMixin, models.JSONField):
    """A sealed document is stored as a JSON string holding the token (sealed documents are
    objects or lists, never strings, so the two cannot be confused)."""

    def get_db_prep_save(self, value, connection):
        if isinstance(value, Sealed):
            return super(SealableMixin, self).get_db_prep_save(seal(json.dumps(value.value)), connection)
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value, expression, connection):
        document = models.JSONField.from_db_value(self, value, expression, connection)
        if is_token(document):
            return json.loads(unseal(document))
        return document


def sealable_fields(model):
    return [field for field in model._meta.concrete_fields if isinstance(field, SealableMixin)]


def encrypted_fields(model):
    return [field for field in model._meta.concrete_fields if isinstance(field, EncryptedMixin)]


class SealingQuerySet(models.QuerySet):
    """bulk_update() does not call pre_save(): seal sensitive rows' content here as save() would."""

    def bulk_update(self, objs, fields, batch_size=None):
        objs = list(objs)
        names = {self.model._meta.get_field(name).attname for name in fields}
        sealable = [field for field in sealable_fields(self.model) if field.attname in names]
        swapped = []
        for obj in objs if sealable else []:
            if not obj.sealed_content():
                continue
            for field in sealable:
                value = getattr(obj, field.attname)
                if value is not None and not isinstance(value, Sealed):
                    swapped.append((obj, field.attname, value))
                    setattr(obj, field.attname, Sealed(value))
        try:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        finally:
            for obj, attname, value in swapped:
                setattr(obj, attname, value)


# --- rotation ---------------------------------------------------------------------------------

def check_encryption_keys(app_configs=None, **kwargs):
    """`manage.py check --deploy`: a deployment must bring its own keys, and they must be keys."""
    if not settings.NOTIFY_ENCRYPTION_KEYS:
        return [Error(
            "NOTIFY_ENCRYPTION_KEYS is empty: credentials and sensitive content are encrypted with a "
            "development key derived from SECRET_KEY.",
            hint="Set NOTIFY_ENCRYPTION_KEYS to one or more keys from cryptography.fernet.Fernet.generate_key().",
            id="notifications.E101",
        )]
    try:
        keyring()
    except ImproperlyConfigured as error:
        return [Error(str(error), id="notifications.E102")]
    return []
