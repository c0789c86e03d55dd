"""End users authenticate with a short-lived JWT their app signs (PyJWT).

    header  {"alg": "HS256" | "RS256" | "ES256", "kid": "<the API client's key_prefix>"}
    claims  {"sub": "<user id (username)>", "aud": NOTIFY_END_USER_TOKEN_AUDIENCE, "exp": <soon>}

HS256 tokens verify with the client's token secret, RS256/ES256 ones with the public key it
registered; the algorithm must match the key (an HS256 token is never checked against a public
key used as an HMAC secret). `exp` is required and may lie at most
NOTIFY_END_USER_TOKEN_MAX_LIFETIME seconds ahead; NOTIFY_END_USER_TOKEN_LEEWAY absorbs clock skew.
The user must be one the client manages. A refusal is logged with its reason and the client,
never with the token.
"""

import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from jwt.algorithms import HMACAlgorithm
from rest_framework import authentication, exceptions

from notifications.models import ApiClient
from notifications.api.permissions import recipients_of

logger = logging.getLogger(__name__)

HMAC_ALGORITHM = "HS256"
MIN_RSA_BITS = 2048


class RefusedToken(Exception):
    """Why a token was refused; the message never contains the token."""


@dataclass(frozen=True)
class EndUserToken:
    """request.auth (and scope["auth"]) for a caller authenticated by an app-signed token."""

    client: ApiClient
    claims: dict


def looks_like_jwt(value):
    return value.count(".") == 2 and not value.startswith("nk_")


@lru_cache(maxsize=256)
def public_key_algorithm(pem):
    """RS256 or ES256 for a PEM public key we accept, or a ValueError saying why not."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise ValueError("Not a PEM public key.") from error
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits.")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("Only RSA (RS256) and P-256 (ES256) public keys are accepted.")


def verification_key(client, algorithm):
    if algorithm == HMAC_ALGORITHM and client.token_secret:
        return client.token_secret
    if client.token_public_key and algorithm == public_key_algorithm(client.token_public_key):
        return client.token_public_key
    raise RefusedToken(f"algorithm {algorithm!r} is not registered for this client")


class HMACWithCheckedKeys(HMACAlgorithm):
    """PyJWT's HS256, checking each key once rather than on every token. PyJWT makes sure an HMAC
    key is not a public key, certificate or JWK (a PEM, SSH, DER and JSON parse, each a raised
    exception for a plain secret) every time it signs or verifies: half of jwt.decode's CPU, for a
    token secret that does not change between the 10,000 tokens of a reconnect storm. A key that
    fails the checks is refused every time, as before (exceptions are not cached)."""

    @lru_cache(maxsize=256)
    def prepare_key(self, key):
        return super().prepare_key(key)


# PyJWT's algorithms are one registry per process (jwt.decode and jwt.encode use it): the same
# HS256 with its key checks memoised.
jwt.unregister_algorithm(HMAC_ALGORITHM)
jwt.register_algorithm(HMAC_ALGORITHM, HMACWithCheckedKeys(HMACAlgorithm.SHA256))

URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def unverified_header(token):
    """A token's header, to find whose key checks it; jwt.decode then checks everything, this header
    included. Not jwt.get_unverified_header: it decodes and checks all three parts, byte by byte in
    Python, and jwt.decode does it all again (the two were a tenth of the realtime process's CPU
    while 10,000 clients reconnected)."""
    segment = token.split(".", 1)[0] if token.count(".") == 2 else ""
    try:
        header = json.loads(base64.b64decode(segment.translate(URLSAFE_TO_STANDARD) + "=" * (-len(segment) % 4), validate=True))
    except (ValueError, TypeError) as error:  # binascii.Error and JSON's errors are ValueErrors
        raise RefusedToken("malformed token") from error
    if not isinstance(header, dict):
        raise RefusedToken("malformed token")
    return header


def signed_claims(token):
    """(client, claims) of a token whose signature, audience and lifetime check out, or RefusedToken.
    Whether its user exists is users_named's question."""
    header = unverified_header(token)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise RefusedToken("no kid header naming the API client")
    client = ApiClient.active_by_prefix(kid[:16])
    if client is None:
        raise RefusedToken(f"unknown or revoked client {kid[:16]!r}")
    algorithm = header.get("alg")
    key = verification_key(client, algorithm)
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=settings.NOTIFY_END_USER_TOKEN_AUDIENCE,
            leeway=settings.NOTIFY_END_USER_TOKEN_LEEWAY, options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise RefusedToken(f"expired (client {kid!r})") from error
    except jwt.InvalidAudienceError as error:
        raise RefusedToken(f"wrong audience (client {kid!r})") from error
    except jwt.InvalidSignatureError as error:
        raise RefusedToken(f"bad signature (client {kid!r})") from error
    except jwt.InvalidTokenError as error:
        raise RefusedToken(f"invalid: {error} (client {kid!r})") from error
    lifetime = claims["exp"] - time.time()
    if lifetime > settings.NOTIFY_END_USER_TOKEN_MAX_LIFETIME + settings.NOTIFY_END_USER_TOKEN_LEEWAY:
        raise RefusedToken(f"exp too far ahead ({int(lifetime)} s; client {kid!r})")
    if not isinstance(claims["sub"], str):
        raise RefusedToken(f"sub is not a string (client {kid!r})")
    return client, claims


def users_named(client, usernames):
    """{username: user} of those among `usernames` the client manages, in one query."""
    return {user.username: user for user in recipients_of(client).filter(username__any=list(usernames))}


def verify(token):
    """(user, EndUserToken) for a valid token, or RefusedToken."""
    result = verify_many([token])[0]
    if isinstance(result, RefusedToken):
        raise result
    return result


def verify_many(tokens):
    """verify() for many tokens with one user query per API client among them: in order, a
    (user, EndUserToken) or the RefusedToken for each."""
    checked = []
    for token in tokens:
        try:
            checked.append(signed_claims(token))
        except RefusedToken as refusal:
            checked.append(refusal)
    wanted = {}
    for result in checked:
        if not isinstance(result, RefusedToken):
            client, claims = result
            wanted.setdefault(client.pk, (client, set()))[1].add(claims["sub"])
    users = {pk: users_named(client, names) for pk, (client, names) in wanted.items()}
    results = []
    for result in checked:
        if not isinstance(result, RefusedToken):
            client, claims = result
            user = users[client.pk].get(claims["sub"])
            result = (user, EndUserToken(client=client, claims=claims)) if user is not None else RefusedToken(
                f"sub is not a recipient of client {client.key_prefix!r}")
        results.append(result)
    return results


def authenticate(token, where):
    """verify(), with the refusal logged; returns (user, auth) or raises RefusedToken."""
    try:
        return verify(token)
    except RefusedToken as refusal:
        log_refusal(refusal, where)
        raise


def log_refusal(refusal, where):
    logger.warning("end-user token refused on %s: %s", where, refusal)


def ensure_token_secret(client):
    """The client's HS256 secret, created on first use (one conditional UPDATE wins a race)."""
    if not client.token_secret:
        ApiClient.objects.filter(pk=client.pk, token_secret__isnull=True).update(token_secret=new_token_secret())
        client.refresh_from_db(fields=["token_secret"])
    return client.token_secret


def new_token_secret():
    return secrets.token_urlsafe(48)


def mint(client, user, lifetime):
    """A token for `user`, signed with the client's HS256 secret, valid `lifetime` seconds."""
    now = int(time.time())
    claims = {"sub": user.username, "aud": settings.NOTIFY_END_USER_TOKEN_AUDIENCE, "iat": now, "exp": now + lifetime}
    token = jwt.encode(claims, ensure_token_secret(client), algorithm=HMAC_ALGORITHM, headers={"kid": client.key_prefix})
    return token, claims["exp"]


class EndUserTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <jwt>`; API keys (`Bearer nk_...`) are left to ApiKeyAuthentication."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword or not looks_like_jwt(token):
            return None
        try:
            return authenticate(token, f"{request.method} {request.path}")
        except RefusedToken as refusal:
            raise exceptions.AuthenticationFailed("Invalid end-user token.") from refusal

    def authenticate_header(self, request):
        return self.keyword
