"""`ember bench` against a real engine: a small plan, so it stays quick on a busy 2-core machine."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ember.cli.main import cli
from ember.ops.bench import BenchResult, Plan
from ember.ops.bench_chart import ChartUnavailable, write_png
from ember.ops.bench_workload import RoughCounter, prefill_prompt, story_prompt
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer, free_port, start_server

SMALL = ["--requests", "1", "--concurrency", "1,2", "--max-tokens", "6", "--prompt-tokens", "48"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("models"))
    yield running
    running.stop()


def test_bench_prints_a_table_and_writes_json_and_png(engine: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "results" / "run"
    result = CliRunner().invoke(cli, ["bench", "--url", engine.url, "--model", BUNDLED, *SMALL, "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "single-stream decode" in result.output and "aggregate, 2 clients" in result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["model"] == BUNDLED and report["failed"] == 0
    assert report["single_stream"]["decode_tokens_per_s"] > 0 and report["single_stream"]["ttft_s"] > 0
    assert report["prompt"]["prompt_tokens"] >= 40 and report["prompt"]["prompt_tokens_per_s"] > 0
    levels = report["concurrency"]
    assert [level["clients"] for level in levels] == [1, 2] and [level["requests"] for level in levels] == [1, 2]
    assert all(level["tokens"] > 0 and level["tokens_per_s"] > 0 for level in levels)
    assert report["machine"]["cpus"] >= 1 and "loadavg_1m_at_start" in report["machine"]
    if importlib.util.find_spec("matplotlib") is None:  # an install without the bench extra: JSON only
        assert "matplotlib is not installed" in result.output and not out.with_suffix(".png").exists()
    else:
        assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_of_an_unknown_model_fails_in_one_line(engine: RunningServer) -> None:
    result = CliRunner().invoke(cli, ["bench", "--url", engine.url, "--model", "nope:1b", *SMALL])
    assert result.exit_code == 1 and "warm-up request failed" in result.output and "not found" in result.output


def test_bench_with_nothing_listening_fails_clearly() -> None:
    result = CliRunner().invoke(cli, ["bench", "--url", f"http://127.0.0.1:{free_port()}", *SMALL])
    assert result.exit_code == 1 and "ConnectError" in result.output


def test_bad_concurrency_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["bench", "--concurrency", "1,x"])
    assert result.exit_code == 2 and "1,4,8" in result.output


def test_without_matplotlib_the_chart_is_skipped_with_a_clear_message(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the bench extra sees
    with pytest.raises(ChartUnavailable, match=r"pip install 'ember\[bench\]'"):
        write_png(BenchResult(url="http://x", model="m", plan=Plan(model="m")), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_prompts_differ_per_index_and_prefill_grows_with_the_target() -> None:
    assert story_prompt("a", 1) != story_prompt("a", 2) != story_prompt("b", 1)
    short, long = (prefill_prompt(1, n, RoughCounter())[0]["content"] for n in (100, 1000))
    assert prefill_prompt(1, 100, RoughCounter()) == prefill_prompt(1, 100, RoughCounter())
    assert len(long) > 5 * len(short)
