import time


def wait_until(predicate, timeout=20.0, interval=0.05, message="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def end_user_token(client, username, *, key=None, algorithm="HS256", lifetime=300, audience="notifications",
                   kid=None, **claims):
    """A JWT as an app signs it for one of its users (PyJWT, like the apps' own code)."""
    import jwt

    now = int(time.time())
    payload = {"sub": username, "aud": audience, "iat": now, "exp": now + lifetime, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    signing_key = key if key is not None else client.token_secret
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers={"kid": kid or client.key_prefix})
