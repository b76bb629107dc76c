"""The official `ollama` Python client's model-management calls against a real Ember server.

create (from a model, and from an uploaded GGUF), create_blob, copy, delete, show, list, and push/pull
against a real registry (Debian's docker-registry). The server is this module's own, so the shared
session server's store stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.conftest import BUNDLED
from tests.conftest_models import gemma_gguf_path
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name
from tests.server_harness import RunningServer, start_server


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("client-models"), context_length=512)
    yield running
    running.stop()


@pytest.fixture
def api(own_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=own_server.url, timeout=120)


def _names(api: ollama.Client) -> list[str]:
    return [m.model or "" for m in api.list().models]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_create_from_existing_model_with_system_and_parameters(api: ollama.Client) -> None:
    done = api.create(model="client/pirate", from_=BUNDLED, system="You are a pirate.",
                      parameters={"temperature": 0.4, "num_ctx": 1024, "stop": ["Arr!"]})
    assert done.status == "success"
    assert "client/pirate:latest" in _names(api)

    shown = api.show("client/pirate")
    parameters = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in (shown.parameters or "").splitlines()}
    assert parameters["temperature"] == "0.4" and parameters["num_ctx"] == "1024"
    assert '"Arr!"' in (shown.parameters or "")
    modelfile = shown.modelfile or ""
    assert "\nFROM " in modelfile and "\nSYSTEM You are a pirate.\n" in modelfile
    assert "PARAMETER temperature 0.4" in modelfile
    base = api.show(BUNDLED)
    assert shown.template == base.template  # inherited from the base model
    assert shown.details is not None and shown.details.parent_model == BUNDLED
    assert "SYSTEM" not in (base.modelfile or "")  # the base model is unchanged

    reply = api.chat(model="client/pirate", messages=[{"role": "user", "content": "Hi"}],
                     options={"num_predict": 4})
    assert reply.done and reply.message.role == "assistant"


def test_create_blob_then_create_from_files(api: ollama.Client, own_server: RunningServer) -> None:
    path = gemma_gguf_path()
    digest = api.create_blob(path)
    assert digest == _sha256(path)
    with own_server.client() as client:
        assert client.head(f"/api/blobs/{digest}").status_code == 200
    assert api.create_blob(path) == digest  # already there: accepted again without a second copy

    progress = list(api.create(model="client/gemma:270m", files={"gemma-3-270m.gguf": digest},
                               template="{{ .Prompt }}", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "parsing GGUF" and statuses[-2:] == ["writing manifest", "success"]
    assert f"using existing layer {digest}" in statuses  # the uploaded blob is the model layer

    entry = next(m for m in api.list().models if m.model == "client/gemma:270m")
    assert entry.details is not None and entry.details.family == "gemma3"
    assert entry.size is not None and entry.size >= path.stat().st_size
    generated = api.generate(model="client/gemma:270m", prompt="The capital of France is", raw=True,
                             options={"num_predict": 2})
    assert generated.done and generated.eval_count


def test_create_errors_are_response_errors(api: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing_blob:
        api.create(model="client/broken", files={"x.gguf": "sha256:" + "0" * 64})
    assert missing_blob.value.status_code == 404 and "not found" in missing_blob.value.error
    with pytest.raises(ollama.ResponseError) as bad_parameter:
        api.create(model="client/broken", from_=BUNDLED, parameters={"no_such_option": 1})
    assert bad_parameter.value.status_code == 400 and "no_such_option" in bad_parameter.value.error
    assert "client/broken:latest" not in _names(api)


def test_copy_show_and_delete(api: ollama.Client) -> None:
    assert api.copy(BUNDLED, "client/copy:v2").status == "success"
    by_name = {m.model: m for m in api.list().models}
    assert by_name["client/copy:v2"].digest == by_name[BUNDLED].digest
    assert api.show("client/copy:v2").modelinfo == api.show(BUNDLED).modelinfo

    assert api.delete("client/copy:v2").status == "success"
    assert "client/copy:v2" not in _names(api)
    assert BUNDLED in _names(api)  # the shared blobs stayed for the source model
    api.show(BUNDLED)

    for call in (lambda: api.delete("client/copy:v2"), lambda: api.show("client/copy:v2"),
                 lambda: api.copy("client/no-such-model", "client/x")):
        with pytest.raises(ollama.ResponseError) as error:
            call()
        assert error.value.status_code == 404 and "not found" in error.value.error


def test_push_and_pull_with_a_real_registry(api: ollama.Client, own_server: RunningServer,
                                            oci_registry: OciRegistry) -> None:  # noqa: F811
    remote = f"{oci_registry.host}/client/smol:v1"
    api.copy(BUNDLED, remote)

    pushed = list(api.push(remote, insecure=True, stream=True))
    assert pushed[0].status == "retrieving manifest" and pushed[-1].status == "success"
    model_events = [p for p in pushed if p.total and p.total > 50_000_000]
    assert model_events and model_events[-1].completed == model_events[-1].total
    tags = httpx.get(f"{oci_registry.url}/v2/client/smol/tags/list").json()
    assert tags["tags"] == ["v1"]
    assert api.push(remote, insecure=True).status == "success"  # non-streaming; everything already there

    api.delete(remote)
    assert remote not in _names(api)
    assert api.pull(remote, insecure=True).status == "success"
    assert remote in _names(api)
    registry_manifest = httpx.get(f"{oci_registry.url}/v2/client/smol/manifests/v1", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"}).content
    local = next(m for m in api.list().models if m.model == remote)
    assert local.digest == hashlib.sha256(registry_manifest).hexdigest()

    streamed = list(api.pull(remote, insecure=True, stream=True))
    assert streamed[0].status == "pulling manifest" and streamed[-1].status == "success"
    assert any(p.digest and p.completed == p.total for p in streamed)
    reply = api.chat(model=remote, messages=[{"role": "user", "content": "Say hi."}], options={"num_predict": 4})
    assert reply.done and reply.message.content

    with pytest.raises(ollama.ResponseError) as missing:
        api.pull(f"{oci_registry.host}/client/smol:no-such-tag", insecure=True)
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as insecure:
        api.pull(f"http://{oci_registry.host}/client/smol:v1")  # plain HTTP without insecure=True
    assert insecure.value.status_code == 400
