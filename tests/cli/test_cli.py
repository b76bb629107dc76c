"""The CLI against a real server: click's runner with EMBER_HOST pointing at the test server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ember.cli.chat import ChatSession
from ember.cli.main import cli
from ember.client import Client
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer


@pytest.fixture
def run_cli(server: RunningServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMBER_HOST", server.settings.host)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_list_prints_table(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("list")
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert any(row.startswith(BUNDLED) and " MB" in row for row in rows)


def test_run_one_shot_with_prompt_and_piped_stdin(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("run", BUNDLED, "What is the capital of France? Answer in one word.")
    assert result.exit_code == 0 and result.output.strip()
    piped = run_cli("run", BUNDLED, input="Say hi.\n")
    assert piped.exit_code == 0 and piped.output.strip()


def test_show_parts_and_ps(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert "<|im_start|>" in run_cli("show", BUNDLED, "--template").output
    assert "Modelfile generated" in run_cli("show", BUNDLED, "--modelfile").output
    info = run_cli("show", BUNDLED).output
    assert "architecture        llama" in info and "completion" in info
    run_cli("run", BUNDLED, "hi")
    assert BUNDLED in run_cli("ps").output


def test_stop_unloads(run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("run", BUNDLED, "hi")
    assert run_cli("stop", BUNDLED).exit_code == 0
    assert BUNDLED not in run_cli("ps").output


def test_errors_are_one_line_and_exit_1(run_cli) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    result = runner.invoke(cli, ["show", "no-such-model"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: model 'no-such-model:latest' not found"]


def test_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_HOST", "127.0.0.1:9")
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 1 and "could not connect" in result.output


def test_repl_commands_change_the_session(server: RunningServer) -> None:
    session = ChatSession(Client(server.url), BUNDLED)
    session.command("/set parameter temperature 0")
    session.command("/set parameter stop <|im_end|> END")
    session.command("/set system You answer in French.")
    assert session.options == {"temperature": 0.0, "stop": ["<|im_end|>", "END"]}
    assert session.system == "You answer in French."
    answer = session.ask("Hello")
    assert answer and len(session.messages) == 2
    session.command("/clear")
    assert session.messages == []
    assert session.command("/bye") == "bye"
