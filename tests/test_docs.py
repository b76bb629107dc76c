"""The docs keep up with the code: every setting and every CLI command is documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from click.testing import CliRunner

from ember.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent


def _gen() -> str:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts/gen_config_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


def test_configuration_doc_is_current() -> None:
    assert (ROOT / "docs/configuration.md").read_text(encoding="utf-8") == _gen(), \
        "run: python scripts/gen_config_docs.py"


def test_every_cli_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runner = CliRunner()
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert command.help, f"{name} has no help text"
        assert f"ember {name}" in readme, f"README does not mention `ember {name}`"
