import pytest


@pytest.fixture
def ada(make_user):
    return make_user("ada")


@pytest.fixture
def api(user_api, ada):
    """The API as the end user Ada (a DRF token)."""
    return user_api(ada)
