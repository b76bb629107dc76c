"""Authentication and authorization at the web role, with the real `ollama` and `openai` clients in front of
a real engine that itself demands EMBER_ENGINE_KEY (so every answer here went through the gateway's key)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import ollama
import openai
import pytest

from ember.db.audit import query_audit
from ember.db.keys import KEY_PREFIX, create_key, revoke_key
from ember.db.users import set_disabled
from tests.conftest import BUNDLED
from tests.gateway.harness import Accounts, RunningWeb

QUESTION = [{"role": "user", "content": "What is the capital of France? One word."}]
FEW = {"num_predict": 6, "temperature": 0}


def _ollama(web: RunningWeb, secret: str | None) -> ollama.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return ollama.Client(host=web.url, headers=headers, timeout=120)


def _openai(web: RunningWeb, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=web.url + "/v1", api_key=secret, max_retries=0, timeout=120)


def test_ollama_client_with_a_key(web: RunningWeb, key: str) -> None:
    api = _ollama(web, key)
    reply = api.chat(model=BUNDLED, messages=QUESTION, options=FEW)
    assert reply.done and reply.message.content and reply.eval_count
    parts = list(api.generate(model=BUNDLED, prompt="Count: 1, 2,", stream=True, options=FEW))
    assert parts[-1].done and all(not p.done for p in parts[:-1]) and len(parts) > 2
    vectors = api.embed(model=BUNDLED, input=["one", "two"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) > 100
    assert BUNDLED in [m.model for m in api.list().models]
    assert api.show(BUNDLED).details.family == "llama"  # type: ignore[union-attr]


def test_openai_sdk_with_a_key(web: RunningWeb, key: str) -> None:
    sdk = _openai(web, key)
    done = sdk.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=6)  # type: ignore[arg-type]
    assert done.choices[0].message.content and done.usage and done.usage.completion_tokens > 0
    stream = sdk.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=6,  # type: ignore[arg-type]
                                         stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert len(sdk.embeddings.create(model=BUNDLED, input="hello").data[0].embedding) > 100
    assert BUNDLED in [m.id for m in sdk.models.list()]
    assert sdk.models.retrieve(BUNDLED).id == BUNDLED


def test_x_api_key_header_works(web: RunningWeb, key: str) -> None:
    response = httpx.get(web.url + "/api/tags", headers={"x-api-key": key})
    assert response.status_code == 200 and response.json()["models"]


def test_no_key_is_401_in_each_api_shape(web: RunningWeb) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        _ollama(web, None).chat(model=BUNDLED, messages=QUESTION)
    assert caught.value.status_code == 401 and "API key" in caught.value.error
    with pytest.raises(openai.AuthenticationError) as refused:
        _openai(web, "not-an-ember-key").chat.completions.create(model=BUNDLED, messages=QUESTION)  # type: ignore[arg-type]
    assert refused.value.status_code == 401
    body = refused.value.response.json()
    assert body["error"]["code"] == "invalid_api_key" and body["error"]["type"] == "invalid_request_error"
    plain = httpx.post(web.url + "/api/chat", json={"model": BUNDLED})
    assert plain.status_code == 401 and plain.headers["www-authenticate"] == "Bearer"
    assert set(plain.json()) == {"error"}


def test_revoked_expired_and_disabled_keys_are_401(web: RunningWeb, accounts: Accounts) -> None:
    db = accounts.database
    _, revoked = create_key(db, name="to-revoke", user_name=accounts.shared_user, scopes=["chat"])
    assert httpx.get(web.url + "/api/tags", headers={"x-api-key": revoked}).status_code == 200
    revoke_key(db, "to-revoke")
    gone = httpx.get(web.url + "/api/tags", headers={"x-api-key": revoked})
    assert gone.status_code == 401 and "revoked" in gone.json()["error"]

    _, expired = create_key(db, name="expired", user_name=accounts.shared_user, scopes=["chat"],
                            expires_at=datetime.now(UTC) - timedelta(seconds=1))
    old = httpx.post(web.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {expired}"},
                     json={"model": BUNDLED, "messages": QUESTION})
    assert old.status_code == 401 and "expired" in old.json()["error"]["message"]

    owner = accounts.user()
    disabled = accounts.key(user=owner)
    set_disabled(db, owner, True)
    assert httpx.get(web.url + "/api/tags", headers={"x-api-key": disabled}).status_code == 401


def test_scope_and_model_allow_list_are_403(web: RunningWeb, accounts: Accounts) -> None:
    embed_only = accounts.key(scopes=("embed",))
    with pytest.raises(ollama.ResponseError) as caught:
        _ollama(web, embed_only).chat(model=BUNDLED, messages=QUESTION)
    assert caught.value.status_code == 403 and "'chat' scope" in caught.value.error
    assert _ollama(web, embed_only).embed(model=BUNDLED, input="fine").embeddings

    one_model = accounts.key(models=["smollm2:135m"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _openai(web, one_model).chat.completions.create(model="gemma3-base:270m",  # type: ignore[arg-type]
                                                        messages=QUESTION)
    assert "may not use model" in denied.value.response.json()["error"]["message"]
    assert _ollama(web, one_model).chat(model=BUNDLED, messages=QUESTION, options=FEW).done

    other_model = accounts.key(models=["gemma3-base:270m"])
    assert _ollama(web, other_model).list().models == []  # listings show only allowed models
    assert [m.id for m in _openai(web, other_model).models.list()] == []


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz", "Bearer", "Bearer  x  y", "ember_sk_x", "Token abc", "Bearer sk-proj-abcdef",
    "Bearer ember_sk_' OR '1'='1", "Bearer ember_sk_" + "A" * 42 + ";", "Bearer " + "ember_sk_" + "x" * 200,
    "Bearer " + "é" * 10,
])
def test_malformed_authorization_is_a_clear_401(web: RunningWeb, header: str) -> None:
    response = httpx.post(web.url + "/api/chat", json={"model": BUNDLED},
                          headers={"Authorization": header.encode("utf-8")})  # type: ignore[dict-item]
    assert response.status_code == 401, response.text
    assert response.json()["error"] and response.headers["www-authenticate"] == "Bearer"


def test_huge_header_is_refused_cleanly(web: RunningWeb) -> None:
    response = httpx.get(web.url + "/api/tags", headers={"Authorization": "Bearer " + "a" * 65536})
    assert 400 <= response.status_code < 500


def test_key_with_a_sql_looking_name_works_as_a_name(web: RunningWeb, accounts: Accounts) -> None:
    name = "x'); DROP TABLE api_keys; --"
    _, secret = create_key(accounts.database, name=name, user_name=accounts.shared_user, scopes=["chat"])
    assert httpx.get(web.url + "/api/tags", headers={"x-api-key": secret}).status_code == 200
    web.flush_audit()
    assert query_audit(accounts.database, key=name, limit=1)[0].status == 200


def test_the_secret_never_reaches_logs_audit_or_metrics(web: RunningWeb, accounts: Accounts,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = accounts.key(scopes=("embed",))
    near_miss = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for value in (secret, near_miss):
        headers = {"Authorization": f"Bearer {value}"}
        httpx.post(web.url + "/api/chat", headers=headers, json={"model": BUNDLED, "messages": QUESTION})
        httpx.post(web.url + "/api/embed", headers=headers, json={"model": BUNDLED, "input": "x"})
    web.flush_audit()
    rows = query_audit(accounts.database, limit=50)
    metrics = httpx.get(web.url + "/metrics", headers={"x-api-key": accounts.key(scopes=("admin",))})
    assert metrics.status_code == 200 and "ember_gateway_requests_total" in metrics.text
    dumped = repr(rows) + caplog.text + metrics.text
    assert secret[len(KEY_PREFIX):] not in dumped and near_miss[len(KEY_PREFIX):] not in dumped
    assert any(r.status == 403 for r in rows) and any(r.status == 401 for r in rows)
