"""Model management commands: pull, push, create, cp, rm."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from ember.cli.common import client as _client
from ember.cli.common import friendly_errors as _errors
from ember.cli.format import human_size
from ember.client import Client, ClientError
from ember.errors import EmberError


class Progress:
    """Renders a progress stream: one bar per digest, plain lines for other statuses."""

    def __init__(self) -> None:
        self._last_status = ""
        self._last_key = ""

    def show(self, item: dict[str, Any]) -> None:
        status = item.get("status", "")
        total, completed = item.get("total"), item.get("completed", 0)
        if total:
            key = str(item.get("digest") or status)
            if self._last_status and key != self._last_key:
                click.echo()  # the previous blob's bar stays on its own line
            self._last_key = key
            percent = int(100 * (completed or 0) / total) if total else 100
            bar = "█" * (percent // 5) + " " * (20 - percent // 5)
            click.echo(f"\r{status}: {percent:3d}% ▕{bar}▏ {human_size(completed or 0)}/{human_size(total)}",
                       nl=False)
            self._last_status = status
            return
        if self._last_status:
            click.echo()
            self._last_status = ""
        click.echo(status)

    def done(self) -> None:
        if self._last_status:
            click.echo()


def _follow(path: str, body: dict[str, Any]) -> None:
    progress = Progress()
    try:
        for item in _client().stream(path, body):
            progress.show(item)
    finally:
        progress.done()


@click.command()
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Allow a plain-HTTP registry.")
@_errors
def pull(model: str, insecure: bool) -> None:
    """Pull a model from a registry (resumes an interrupted pull)."""
    _follow("/api/pull", {"model": model, "insecure": insecure, "stream": True})


@click.command()
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Allow a plain-HTTP registry.")
@_errors
def push(model: str, insecure: bool) -> None:
    """Push a model to a registry (name it host/namespace/model:tag)."""
    _follow("/api/push", {"model": model, "insecure": insecure, "stream": True})


@click.command()
@click.argument("model")
@click.option("-f", "--file", "modelfile", default="Modelfile", show_default=True,
              type=click.Path(dir_okay=False), help="Path to the Modelfile.")
@click.option("-q", "--quantize", help="Quantize the model (q4_K_M, q4_0, q8_0); source must be F16/F32.")
@_errors
def create(model: str, modelfile: str, quantize: str | None) -> None:
    """Create a model from a Modelfile. Local files it names are uploaded as blobs first."""
    from ember.modelfile import parse_modelfile

    path = Path(modelfile)
    if not path.exists():
        raise ClientError(f"no Modelfile at {path}; pass -f PATH")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from None
    try:
        fields = parse_modelfile(text, path.parent).to_create_fields()
    except EmberError as exc:  # ModelfileError: the message names the line
        raise ClientError(exc.message) from None
    client = _client()
    body: dict[str, Any] = {k: v for k, v in fields.items() if v not in (None, [], {}, "")}
    body.update(model=model, stream=True)
    source = body.get("from")
    # The parser makes a FROM path that exists absolute; anything else is a model name or a digest.
    if isinstance(source, str) and Path(source).is_absolute() and Path(source).is_file():
        body.pop("from")
        body["files"] = {_weights_name(Path(source)): _upload(client, Path(source))}
    if body.get("adapters"):
        adapters = [Path(a) for a in body["adapters"]]
        for adapter in adapters:
            if not adapter.is_file():
                raise ClientError(f"adapter file {adapter} does not exist")
        body["adapters"] = {_weights_name(a): _upload(client, a) for a in adapters}
    if quantize:
        body["quantize"] = quantize
    _follow("/api/create", body)


def _weights_name(path: Path) -> str:
    """The ``files`` key for an uploaded file: the server picks GGUFs by their ``.gguf`` suffix.

    A GGUF without it (``FROM`` a blob path, as ``ember show --modelfile`` prints) gets the suffix added.
    """
    name = path.name
    if name.lower().endswith(".gguf"):
        return name
    try:
        with path.open("rb") as fh:
            is_gguf = fh.read(4) == b"GGUF"
    except OSError:
        is_gguf = False
    return f"{name}.gguf" if is_gguf else name


def _upload(client: Client, path: Path) -> str:
    try:
        digest = "sha256:" + _sha256(path)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    click.echo(f"copying file {digest} 0%", nl=False)
    if not client.has_blob(digest):
        client.upload_blob(digest, path)
    click.echo(f"\rcopying file {digest} 100%")
    return digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@click.command()
@click.argument("source")
@click.argument("destination")
@_errors
def cp(source: str, destination: str) -> None:
    """Copy a model to a new name."""
    _client().request("POST", "/api/copy", {"source": source, "destination": destination})
    click.echo(f"copied '{source}' to '{destination}'")


@click.command()
@click.argument("models", nargs=-1, required=True)
@_errors
def rm(models: tuple[str, ...]) -> None:
    """Remove one or more models (unloading them first)."""
    client = _client()
    for model in models:
        client.request("DELETE", "/api/delete", {"model": model})
        click.echo(f"deleted '{model}'")


COMMANDS = [pull, push, create, cp, rm]
