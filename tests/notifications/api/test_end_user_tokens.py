"""End-user tokens signed by apps: HS256 with the client's secret, RS256/ES256 with its public key."""

import logging

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from notifications.api.end_user_tokens import HMACWithCheckedKeys, RefusedToken, new_token_secret, unverified_header
from notifications.models import ApiClient, Notification
from notifications.tenancy import grant
from tests.support import end_user_token

pytestmark = pytest.mark.django_db

INBOX = "/api/notifications/"


def pem_pair(private_key):
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    private = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private, public


@pytest.fixture(scope="module")
def rsa_keys():
    return pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_keys():
    return pem_pair(ec.generate_private_key(ec.SECP256R1()))


def client_manager(user):
    """An operator who may manage API clients (the Django permissions, not only staff)."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_apiclient", "change_apiclient"]))
    return user.__class__.objects.get(pk=user.pk)  # a fresh object: permissions are cached


@pytest.fixture
def shop(make_user, rsa_keys, ec_keys, django_user_model, test_app_clients):
    client, key = ApiClient.issue("Shop", make_user("shop-owner"), scopes=["send", "read"])
    grant(client, django_user_model.objects.all())  # the test's users are the app's recipients
    test_app_clients.append(client)
    client.token_secret = new_token_secret()
    client.save()
    client.key = key
    return client


@pytest.fixture
def ada(make_user):
    user = make_user("ada")
    Notification.objects.create(recipient=user, category_id="orders", title="for ada")
    Notification.objects.create(recipient=make_user("bob"), category_id="orders", title="for bob")
    return user


def bearer(token):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_hs256_token_reads_only_the_users_own_inbox(shop, ada):
    response = bearer(end_user_token(shop, "ada")).get(INBOX)
    assert response.status_code == 200, response.content
    assert [n["title"] for n in response.json()["results"]] == ["for ada"]


def test_end_user_may_mark_read_and_read_preferences(shop, ada):
    api = bearer(end_user_token(shop, "ada"))
    notification = Notification.objects.get(recipient=ada)
    assert api.put(f"{INBOX}{notification.id}/read").status_code == 200
    assert Notification.objects.get(id=notification.id).read_at is not None
    assert api.get("/api/notifications/preferences/").status_code == 200
    # An end user is no sender.
    assert api.post(INBOX, {"recipients": ["ada"], "category": "orders", "title": "x"}, format="json").status_code == 403


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_registered_public_key_verifies_rs256_and_es256(shop, ada, rsa_keys, ec_keys, kind):
    private, public = rsa_keys if kind == "rsa" else ec_keys
    algorithm = "RS256" if kind == "rsa" else "ES256"
    operator = APIClient()
    operator.force_authenticate(client_manager(ada.__class__.objects.create_user("op", is_staff=True)))
    response = operator.put(f"/api/clients/{shop.id}/token-public-key/", {"public_key": public}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["algorithm"] == algorithm
    assert bearer(end_user_token(shop, "ada", key=private, algorithm=algorithm)).get(INBOX).status_code == 200
    # The other asymmetric algorithm is not this key's.
    other_private = ec_keys[0] if kind == "rsa" else rsa_keys[0]
    other_algorithm = "ES256" if kind == "rsa" else "RS256"
    assert bearer(end_user_token(shop, "ada", key=other_private, algorithm=other_algorithm)).get(INBOX).status_code == 401


def test_public_key_registration_refuses_bad_keys(shop, make_user):
    operator = APIClient()
    operator.force_authenticate(client_manager(make_user("op", is_staff=True)))
    weak = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=1024))[1]
    for pem, words in [("not a key", "PEM"), (weak, "2048")]:
        response = operator.put(f"/api/clients/{shop.id}/token-public-key/", {"public_key": pem}, format="json")
        assert response.status_code == 400
        assert words in str(response.json())


def test_token_secret_rotation_is_shown_once_and_retires_the_old_one(shop, ada, make_user):
    old = end_user_token(shop, "ada")
    operator = APIClient()
    operator.force_authenticate(client_manager(make_user("op", is_staff=True)))
    response = operator.post(f"/api/clients/{shop.id}/token-secret/")
    assert response.status_code == 200
    secret = response.json()["token_secret"]
    assert len(secret) >= 48
    assert "token_secret" not in operator.get(f"/api/clients/{shop.id}/").json()
    assert bearer(old).get(INBOX).status_code == 401
    shop.refresh_from_db()
    assert bearer(end_user_token(shop, "ada")).get(INBOX).status_code == 200


def refused_tokens(shop, rsa_keys):
    return {
        "expired": end_user_token(shop, "ada", lifetime=-120),
        "wrong audience": end_user_token(shop, "ada", audience="someone-else"),
        "bad signature": end_user_token(shop, "ada", key="not-the-secret-" * 4),
        "unknown client": end_user_token(shop, "ada", kid="deadbeef"),
        "exp too far ahead": end_user_token(shop, "ada", lifetime=10 * 3600),
        "no exp": jwt.encode({"sub": "ada", "aud": "notifications"}, shop.token_secret, algorithm="HS256",
                             headers={"kid": shop.key_prefix}),
        "unknown user": end_user_token(shop, "nobody"),
        "operator account": end_user_token(shop, "shop-owner-staff"),
        "alg none": jwt.encode({"sub": "ada", "aud": "notifications", "exp": 9999999999}, None, algorithm="none",
                               headers={"kid": shop.key_prefix}),
        # RS256 is not registered for this client: its public key never doubles as an HMAC secret.
        "rs256 not registered": end_user_token(shop, "ada", key=rsa_keys[0], algorithm="RS256"),
        "malformed": "abc.def.ghi",
    }


def test_bad_tokens_are_401_and_logged_without_the_token(shop, ada, make_user, rsa_keys, caplog):
    make_user("shop-owner-staff", is_staff=True)
    for name, token in refused_tokens(shop, rsa_keys).items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="notifications.api.end_user_tokens"):
            response = bearer(token).get(INBOX)
        assert response.status_code == 401, (name, response.content)
        assert response["WWW-Authenticate"] == "Bearer"
        assert "end-user token refused" in caplog.text, name
        signature = token.split(".")[2]
        assert token not in caplog.text and (not signature or signature not in caplog.text), name


def test_the_header_read_to_find_the_key_is_the_one_pyjwt_reads(shop, rsa_keys):
    for token in [end_user_token(shop, "ada"), end_user_token(shop, "ada", key=rsa_keys[0], algorithm="RS256"),
                  jwt.encode({"sub": "ada"}, None, algorithm="none", headers={"kid": "x" * 40, "typ": "JWT"})]:
        assert unverified_header(token) == jwt.get_unverified_header(token)


def test_hs256_checks_a_key_once_and_refuses_a_public_key_as_its_secret_every_time(rsa_keys):
    assert isinstance(jwt.get_algorithm_by_name("HS256"), HMACWithCheckedKeys)
    for _ in range(2):  # a refused key is not remembered as checked
        with pytest.raises(jwt.InvalidKeyError, match="asymmetric key"):
            jwt.encode({"sub": "ada"}, rsa_keys[1], algorithm="HS256")
    secret, other = new_token_secret(), new_token_secret()
    token = jwt.encode({"sub": "ada"}, secret, algorithm="HS256")
    checked = HMACWithCheckedKeys.prepare_key.cache_info()
    for _ in range(3):
        assert jwt.decode(token, secret, algorithms=["HS256"]) == {"sub": "ada"}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["HS256"])
    after = HMACWithCheckedKeys.prepare_key.cache_info()
    assert (after.hits - checked.hits, after.misses - checked.misses) == (3, 1)


@pytest.mark.parametrize("token", [
    "abc.def.ghi",  # not JSON
    "W10.e30.x",  # JSON, but a list
    "e3*9.e30.x",  # not base64url
    "e30.e30",  # two parts
    "..",  # nothing
    "eyJhbGciOiJIUzI1NiJ9.e30.x.y",  # four parts
])
def test_a_token_whose_header_cannot_be_read_is_malformed(token):
    with pytest.raises(RefusedToken, match="^malformed token$"):
        unverified_header(token)


def test_revoked_client_tokens_are_refused(shop, ada):
    token = end_user_token(shop, "ada")
    ApiClient.objects.filter(id=shop.id).update(active=False)
    assert bearer(token).get(INBOX).status_code == 401


def test_send_key_mints_a_token_for_its_recipient(shop, ada):
    app = bearer(shop.key)
    response = app.post("/api/recipients/ada/token/", {"expires_in": 600}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_at"]
    claims = jwt.decode(body["token"], shop.token_secret, algorithms=["HS256"], audience="notifications")
    assert claims["sub"] == "ada" and claims["exp"] - claims["iat"] == 600
    assert [n["title"] for n in bearer(body["token"]).get(INBOX).json()["results"]] == ["for ada"]


def test_minting_creates_the_secret_when_the_client_has_none(make_user):
    ada = make_user("ada")
    client, key = ApiClient.issue("New app", make_user("new-owner"), scopes=["send"])
    grant(client, [ada])
    response = bearer(key).post("/api/recipients/ada/token/", {}, format="json")
    assert response.status_code == 201
    client.refresh_from_db()
    assert client.token_secret
    assert bearer(response.json()["token"]).get(INBOX).status_code == 200


def test_minting_refusals(shop, ada, make_user, settings):
    app = bearer(shop.key)
    too_long = app.post("/api/recipients/ada/token/", {"expires_in": settings.NOTIFY_END_USER_TOKEN_MAX_LIFETIME + 1},
                        format="json")
    assert too_long.status_code == 400 and "expires_in" in too_long.json()["error"]["fields"]
    assert app.post("/api/recipients/ada/token/", {"expires_in": "soon"}, format="json").status_code == 400
    assert app.post("/api/recipients/nobody/token/").status_code == 404
    make_user("root", is_staff=True)
    assert app.post("/api/recipients/root/token/").status_code == 404
    _reader, read_key = ApiClient.issue("Reader", make_user("reader-owner"), scopes=["read"])
    assert bearer(read_key).post("/api/recipients/ada/token/").status_code == 403
    staff = APIClient()
    staff.force_authenticate(client_manager(make_user("op", is_staff=True)))
    assert staff.post("/api/recipients/ada/token/").status_code == 403
    # An end user cannot mint tokens, not even for themselves.
    assert bearer(end_user_token(shop, "ada")).post("/api/recipients/ada/token/").status_code == 403
