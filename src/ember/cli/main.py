"""`ember` command line. Every command but `serve` talks to the server over HTTP (EMBER_HOST/OLLAMA_HOST)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ember import __version__
from ember.cli import accounts, bench, doctor, health, models
from ember.cli.common import client, friendly_errors
from ember.cli.format import human_size, relative_time, table
from ember.config import ROLES, Settings, describe


def _settings_epilog() -> str:
    lines = ["\b", "Environment (EMBER_* wins over OLLAMA_*):"]
    for env, default, help_text in describe():
        lines.append(f"  {env}  [default: {default}]")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="ember")
def cli() -> None:
    """Ember: a self-hosted, Ollama-compatible LLM server on llama.cpp.

    Start the server with `ember serve`, then chat with `ember run smollm2:135m`.
    """


@cli.command(epilog=_settings_epilog())
@click.option("--host", help="Engine bind address host:port (default 127.0.0.1:11434; env EMBER_HOST/OLLAMA_HOST).")
@click.option("--models", "models_dir", help="Model store directory (env EMBER_MODELS/OLLAMA_MODELS).")
@click.option("--preload", multiple=True,
              help="Pull NAME, or create NAME=PATH from a GGUF or Modelfile, before serving (repeatable; env "
                   "EMBER_PRELOAD).")
@click.option("--role", type=click.Choice(ROLES),
              help="all: engine and web role in one process (default); engine: the inference API only; web: the "
                   "authenticated gateway in front of EMBER_ENGINES (env EMBER_ROLE).")
@click.option("--web-host", help="Web role bind address host:port (default 127.0.0.1:8080; env EMBER_WEB_HOST).")
def serve(host: str | None, models_dir: str | None, preload: tuple[str, ...], role: str | None,
          web_host: str | None) -> None:
    """Run the server: the engine (Ollama and OpenAI APIs) and the web role (the same APIs behind API keys)."""
    from ember.cli.serve import run_server
    from ember.errors import EmberError

    overrides: dict[str, Any] = {}
    if preload:
        overrides["preload"] = preload
    if host:
        overrides["host"] = host
    if role:
        overrides["role"] = role
    if web_host:
        overrides["web_host"] = web_host
    if models_dir:
        from pathlib import Path

        overrides["models_dir"] = Path(models_dir)
    try:
        run_server(Settings.from_env(**overrides))
    except EmberError as exc:
        raise click.ClickException(exc.message) from None


@cli.command("list")
@friendly_errors
def list_models() -> None:
    """List models in the store: NAME, ID, SIZE, MODIFIED."""
    models = client().request("GET", "/api/tags")["models"]
    rows = [[m["name"], m["digest"][:12], human_size(m["size"]), relative_time(m["modified_at"])] for m in models]
    click.echo(table(["NAME", "ID", "SIZE", "MODIFIED"], rows))


cli.add_command(list_models, "ls")


@cli.command()
@friendly_errors
def ps() -> None:
    """List loaded models: NAME, ID, SIZE, PROCESSOR, CONTEXT, ACTIVE, QUEUED, UNTIL."""
    models = client().request("GET", "/api/ps")["models"]
    rows = [[m["name"], m["digest"][:12], human_size(m["size"]), "100% CPU", str(m.get("context_length", "")),
             str(m.get("active", 0)), str(m.get("queued", 0)), relative_time(m["expires_at"])] for m in models]
    click.echo(table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "ACTIVE", "QUEUED", "UNTIL"], rows))


@cli.command()
@click.argument("model")
@click.option("--modelfile", "part", flag_value="modelfile", help="Print the Modelfile.")
@click.option("--parameters", "part", flag_value="parameters", help="Print the parameters.")
@click.option("--template", "part", flag_value="template", help="Print the template.")
@click.option("--system", "part", flag_value="system", help="Print the system prompt.")
@click.option("--license", "part", flag_value="license", help="Print the license.")
@click.option("-v", "--verbose", is_flag=True, help="Show all metadata.")
@friendly_errors
def show(model: str, part: str | None, verbose: bool) -> None:
    """Show a model's details, or one part of it."""
    info = client().request("POST", "/api/show", {"model": model, "verbose": verbose})
    if part:
        click.echo(info.get(part, ""))
        return
    click.echo(_describe(info, verbose))


def _describe(info: dict[str, Any], verbose: bool) -> str:
    details, meta = info.get("details", {}), info.get("model_info", {})
    arch = meta.get("general.architecture", details.get("family", ""))
    lines = ["  Model",
             f"    architecture        {arch}",
             f"    parameters          {details.get('parameter_size', '')}",
             f"    context length      {meta.get(f'{arch}.context_length', '')}",
             f"    embedding length    {meta.get(f'{arch}.embedding_length', '')}",
             f"    quantization        {details.get('quantization_level', '')}",
             "", "  Capabilities"]
    lines += [f"    {c}" for c in info.get("capabilities", [])]
    if info.get("parameters"):
        lines += ["", "  Parameters"] + [f"    {p}" for p in info["parameters"].splitlines()]
    if info.get("license"):
        lines += ["", "  License"] + [f"    {p}" for p in info["license"].splitlines()[:2]]
    if verbose:
        lines += ["", "  Metadata"] + [f"    {k:<40} {v}" for k, v in meta.items()]
    return "\n".join(lines)


@cli.command()
@click.argument("model")
@friendly_errors
def stop(model: str) -> None:
    """Unload a running model now."""
    client().request("POST", "/api/generate", {"model": model, "keep_alive": 0})


@cli.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", help="How long to keep the model loaded (e.g. 5m, -1 for forever).")
@click.option("--verbose", is_flag=True, help="Print timings after each response.")
@click.option("--format", "fmt", type=click.Choice(["json"]), help="Ask for JSON output.")
@click.option("--think/--nothink", default=None, help="Turn thinking on or off (thinking models).")
@click.option("--hidethinking", is_flag=True, help="Do not print the model's reasoning.")
@friendly_errors
def run(model: str, prompt: tuple[str, ...], keepalive: str | None, verbose: bool, fmt: str | None,
        think: bool | None, hidethinking: bool) -> None:
    """Chat with MODEL; one answer if PROMPT is given or stdin is piped, else an interactive session."""
    from ember.cli.chat import ChatSession

    session = ChatSession(client(), model, keepalive=keepalive, verbose=verbose, fmt=fmt, think=think,
                          hide_thinking=hidethinking)
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{piped}\n{text}".strip() if text else piped.strip()
    if text:
        session.one_shot(text)
    else:
        session.repl()


for _command in [*models.COMMANDS, *accounts.COMMANDS, *health.COMMANDS, *doctor.COMMANDS,
                 *bench.COMMANDS]:
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="ember")


if __name__ == "__main__":
    main()
