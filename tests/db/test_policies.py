"""Model policies: defaults and locked options per model, keyed by the resolved model name."""

from __future__ import annotations

import pytest

from ember.db import Database
from ember.db.policies import ModelPolicy, delete_policy, get_policies, get_policy, set_policy
from ember.errors import BadRequest, InvalidModelName


def test_set_get_replace_delete(db: Database) -> None:
    assert get_policy(db, "smollm2:135m") is None and get_policies(db) == {}
    policy = ModelPolicy(model="smollm2:135m", system="Be brief.", defaults={"num_ctx": 2048, "temperature": 0.2,
                         "stop": ["\n\n"]}, locked=frozenset({"num_ctx", "system"}))
    set_policy(db, policy)
    stored = get_policy(db, "smollm2:135m")
    assert stored is not None
    assert (stored.system, dict(stored.defaults), stored.locked) == (
        "Be brief.", {"num_ctx": 2048, "temperature": 0.2, "stop": ["\n\n"]}, {"num_ctx", "system"})
    set_policy(db, ModelPolicy(model="smollm2:135m", defaults={"num_predict": 64}))
    replaced = get_policy(db, "smollm2:135m")
    assert replaced == ModelPolicy(model="smollm2:135m", defaults={"num_predict": 64})
    assert delete_policy(db, "smollm2:135m") and not delete_policy(db, "smollm2:135m")
    assert get_policy(db, "smollm2:135m") is None


def test_names_resolve_like_the_store(db: Database) -> None:
    set_policy(db, ModelPolicy(model="gemma3", locked=frozenset({"num_ctx"})))
    assert list(get_policies(db)) == ["gemma3:latest"]
    assert get_policy(db, "registry.ollama.ai/library/gemma3:latest") is not None
    with pytest.raises(InvalidModelName):
        set_policy(db, ModelPolicy(model="../../etc"))


def test_defaults_must_be_json(db: Database) -> None:
    with pytest.raises(BadRequest):
        set_policy(db, ModelPolicy(model="m", defaults={"temperature": float("nan")}))
    with pytest.raises(BadRequest):
        set_policy(db, ModelPolicy(model="m", defaults={"x": object()}))
    assert get_policies(db) == {}


def test_returned_policies_cannot_be_changed_in_place(db: Database) -> None:
    set_policy(db, ModelPolicy(model="m", defaults={"num_ctx": 1024}))
    policy = get_policy(db, "m")
    assert policy is not None
    with pytest.raises(TypeError):
        policy.defaults["num_ctx"] = 99999  # type: ignore[index]
