"""API keys: shown once, stored only as a keyed hash, revocable."""
import hashlib

import pytest
from sqlalchemy import select

from services.config import get_settings
from services.store import keys
from services.store.db import session_scope
from services.store.models import ApiKey


@pytest.fixture
def session(service_env):
    with session_scope() as session:
        yield session


def test_a_key_identifies_its_owner_until_revoked(session):
    key = keys.create_api_key(session, "alice", name="laptop")
    assert keys.owner_for_api_key(session, key) == "alice"
    assert keys.owner_for_api_key(session, key + "x") is None
    [stored] = keys.list_api_keys(session, owner="alice")
    assert keys.revoke_api_key(session, stored.id) is True
    assert keys.owner_for_api_key(session, key) is None
    assert keys.revoke_api_key(session, stored.id) is False


def test_only_a_keyed_hash_is_stored(session, service_env):
    key = keys.create_api_key(session, "alice")
    stored = session.scalar(select(ApiKey.key_hash))
    assert key not in stored and stored != hashlib.sha256(key.encode()).hexdigest()
    service_env(API_KEY_SECRET="another-server-secret")
    assert get_settings().API_KEY_SECRET == "another-server-secret"
    assert keys.owner_for_api_key(session, key) is None  # the hash depends on the server secret


def test_keys_are_long_random_and_distinct(session):
    made = {keys.create_api_key(session, "alice") for _ in range(20)}
    assert len(made) == 20 and all(len(k) > 40 for k in made)
    with pytest.raises(ValueError):
        keys.create_api_key(session, "")
