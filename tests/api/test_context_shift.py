"""Context shift on the real model: a generation longer than num_ctx goes on, unless the request says no."""

from __future__ import annotations

import httpx

from tests.conftest import BUNDLED

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


def generate(client: httpx.Client, **extra: object) -> dict[str, object]:
    body = {"model": BUNDLED, "prompt": COUNTING, "raw": True, "stream": False,
            "options": {"temperature": 0, "num_ctx": 64, "num_predict": 120}, **extra}
    response = client.post("/api/generate", json=body, timeout=300)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_a_generation_longer_than_num_ctx_goes_on_past_it(client: httpx.Client) -> None:
    shifted = generate(client)
    assert shifted["done_reason"] == "length"
    assert shifted["eval_count"] == 120, "num_predict ended it, not the 64-token context"
    assert "30" in str(shifted["response"]), "the model kept counting across the shifts"


def test_shift_false_or_truncate_false_stop_at_the_context(client: httpx.Client) -> None:
    for flag in ({"shift": False}, {"truncate": False}):
        stopped = generate(client, **flag)
        assert stopped["done_reason"] == "length"
        count = stopped["eval_count"]
        assert isinstance(count, int) and count < 64
