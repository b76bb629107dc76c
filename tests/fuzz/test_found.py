"""Regression tests for what the fuzzers found (issue 14), against the real server and model.

- A JSON number with more than 4300 digits made ``json.loads`` raise a plain ValueError: a 500 on every route.
- ``keep_alive: NaN`` (JSON allows it through Python's parser) was accepted; the model's expiry became NaN and
  every later ``/api/ps`` was a 500 until the model unloaded.
- Templates (a Modelfile TEMPLATE, or ``template`` in /api/generate): thousands of nested parentheses or
  blocks raised RecursionError while parsing; a char constant that is no code point a ValueError; ``printf "%c"``
  or ``"%q"`` of an int that is no code point a ValueError or OverflowError. Now a TemplateError (400), or
  U+FFFD as Go prints it.
- A runner reading a long prompt (or a batch of embeddings) sent nothing until it was done, so the stall
  watchdog took any prompt that needs longer than ``EMBER_STALL_TIMEOUT`` for a wedge, killed the runner and
  failed every request on it (found on a busy 2-core machine: ~2,000 prompt tokens took over 30 s). The runner
  now sends a heartbeat after each decode step and each embedding. The two tests are slow (about a minute on
  two cores) and skip when the machine is so fast that the work ends before the watchdog would have fired.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ember.errors import TemplateError
from ember.gotemplate import prompt_from_template, render
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer, start_server

STALL_S = 10.0


@pytest.fixture(scope="module")
def slow_prompt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Prompts read 8 tokens per decode step, and, once the runner is warm, a short stall watchdog: every
    step is far shorter than the watchdog, but a whole long prompt (or a batch of embeddings) takes longer.

    The watchdog is shortened only after a first generate and embed, because a fresh runner's first decode
    (buffer allocation; ~10 s on a busy 2-core machine) is one step that no heartbeat can split."""
    running = start_server(tmp_path_factory.mktemp("models"), num_batch=8)
    with running.client() as client:
        warm = client.post("/api/generate", json={"model": BUNDLED, "prompt": "Hi", "stream": False,
                                                  "options": {"num_predict": 1}})
        assert warm.status_code == 200, warm.text
        assert client.post("/api/embed", json={"model": BUNDLED, "input": "warm"}).status_code == 200
    bundled_runner(running).stall_timeout = STALL_S
    yield running
    running.stop()


def bundled_runner(server: RunningServer) -> Any:
    loaded = server.services.scheduler.loaded
    return next(x.runner for x in loaded.values() if x.model.name.display == BUNDLED)


def runner_pid(server: RunningServer) -> int:
    return int(bundled_runner(server).process.pid)


def test_a_number_with_thousands_of_digits_is_a_400_on_every_route(client: httpx.Client) -> None:
    for path in ("/api/generate", "/api/chat", "/api/embed", "/api/show", "/v1/chat/completions"):
        body = '{"model": "' + BUNDLED + '", "keep_alive": ' + "9" * 5000 + "}"
        response = client.post(path, content=body, timeout=10)
        assert response.status_code == 400, (path, response.text)
        assert "more than 4300 digits" in response.text


@pytest.mark.parametrize("path", ["/api/generate", "/api/embed", "/v1/chat/completions"])
def test_keep_alive_nan_is_a_400_and_ps_keeps_answering(client: httpx.Client, path: str) -> None:
    body = {"model": BUNDLED, "prompt": "hi", "input": "hi", "messages": [{"role": "user", "content": "hi"}],
            "stream": False, "options": {"num_predict": 1}, "max_tokens": 1, "keep_alive": "NAN"}
    response = client.post(path, content=json.dumps(body).replace('"NAN"', "NaN"), timeout=30)
    assert response.status_code == 400, response.text
    assert "keep_alive" in response.text
    assert client.get("/api/ps").status_code == 200


@pytest.mark.parametrize("template", [
    "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}", "{{if 1}}" * 3000 + "{{end}}" * 3000, "{{ '\\U00110000' }}",
    '{{ "\\ud800" }}'])
def test_hostile_templates_are_typed_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, {})
    with pytest.raises(TemplateError):
        prompt_from_template(template, system=None, messages=[{"role": "user", "content": "hi"}], tools=None)


@pytest.mark.parametrize(("template", "expected"), [('{{ printf "%c" -1 }}', "\ufffd"),
                                                    ('{{ printf "%q" 99999999999 }}', "'\ufffd'"),
                                                    ('{{ printf "%c" 65 }}', "A")])
def test_printf_of_an_int_that_is_no_code_point_prints_the_replacement_character(template: str,
                                                                                  expected: str) -> None:
    assert render(template, {}) == expected


def test_a_hostile_request_template_is_a_400(client: httpx.Client) -> None:
    for template in ('{{ printf "%c" -1 }}x', "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}"):
        response = client.post("/api/generate", json={"model": BUNDLED, "prompt": "hi", "template": template,
                                                      "stream": False, "options": {"num_predict": 1}}, timeout=30)
        assert response.status_code in (200, 400), response.text
        assert "internal server error" not in response.text


@pytest.mark.slow
def test_reading_a_long_prompt_is_not_mistaken_for_a_wedged_runner(slow_prompt_server: RunningServer) -> None:
    prompt = " ".join(f"word{i % 97} and" for i in range(400))
    with slow_prompt_server.client() as client:
        pid = runner_pid(slow_prompt_server)
        started = time.monotonic()
        response = client.post("/api/generate", json={"model": BUNDLED, "prompt": prompt, "stream": False,
                                                      "options": {"num_predict": 1}})
        took = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.json()["prompt_eval_count"] > 900
        assert runner_pid(slow_prompt_server) == pid, "the runner was killed while reading the prompt"
        if took < STALL_S:
            pytest.skip(f"the prompt took only {took:.1f} s here, shorter than the watchdog: nothing proven")


@pytest.mark.slow
def test_a_long_batch_of_embeddings_is_not_mistaken_for_a_wedged_runner(slow_prompt_server: RunningServer) -> None:
    inputs = [f"sentence number {i} about apples, pears and the weather in spring" for i in range(40)]
    with slow_prompt_server.client() as client:
        started = time.monotonic()
        response = client.post("/api/embed", json={"model": BUNDLED, "input": inputs})
        took = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert len(response.json()["embeddings"]) == len(inputs)
        if took < STALL_S:
            pytest.skip(f"the batch took only {took:.1f} s here, shorter than the watchdog: nothing proven")
