"""The `ember run` chat session: one-shot answers and the interactive REPL."""

from __future__ import annotations

import shlex
from typing import Any

import click

from ember.client import Client, ClientError
from ember.errors import BadRequest
from ember.options import OPTION_TYPES, coerce_option

HELP = """Available commands:
  /set parameter <name> <value>   Set a parameter (e.g. /set parameter temperature 0.2)
  /set system <text>              Set the system message
  /set format json | /set noformat
  /set verbose | /set quiet       Show or hide timings
  /set think | /set nothink
  /show info|parameters|system|template|license|modelfile
  /clear                          Forget the conversation
  /bye                            Exit
  /?, /help                       This help

Use \"\"\" to begin and end a multi-line message."""


class ChatSession:
    def __init__(self, client: Client, model: str, *, keepalive: str | None = None, verbose: bool = False,
                 fmt: str | None = None, think: bool | None = None, hide_thinking: bool = False) -> None:
        self.client = client
        self.model = model
        self.keepalive = keepalive
        self.verbose = verbose
        self.format = fmt
        self.think = think
        self.hide_thinking = hide_thinking
        self.options: dict[str, Any] = {}
        self.system: str | None = None
        self.messages: list[dict[str, Any]] = []

    def _request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.system:
            body["messages"] = [{"role": "system", "content": self.system}, *messages]
        if self.options:
            body["options"] = self.options
        if self.format:
            body["format"] = self.format
        if self.think is not None:
            body["think"] = self.think
        if self.keepalive is not None:
            body["keep_alive"] = _keepalive_value(self.keepalive)
        return body

    def ask(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        answer: list[str] = []
        final: dict[str, Any] = {}
        try:
            for chunk in self.client.stream("/api/chat", self._request(self.messages)):
                message = chunk.get("message", {})
                if message.get("thinking") and not self.hide_thinking:
                    click.secho(message["thinking"], nl=False, dim=True)
                if message.get("content"):
                    answer.append(message["content"])
                    click.echo(message["content"], nl=False)
                if chunk.get("done"):
                    final = chunk
        except ClientError:
            self.messages.pop()
            raise
        click.echo()
        if final.get("truncated"):
            click.secho("(note: older messages were dropped to fit the context window)", err=True, dim=True)
        self.messages.append({"role": "assistant", "content": "".join(answer)})
        if self.verbose:
            _print_stats(final)
        return "".join(answer)

    def one_shot(self, text: str) -> None:
        self.ask(text)

    def repl(self) -> None:
        self.client.request("POST", "/api/chat", {"model": self.model, "messages": []})  # load, or a clear error
        while True:
            try:
                line = _read_message()
            except EOFError:
                click.echo()
                return
            if line is None:
                continue
            if line.startswith("/"):
                if self.command(line) == "bye":
                    return
                continue
            try:
                self.ask(line)
            except ClientError as exc:
                click.echo(f"Error: {exc}", err=True)

    def command(self, line: str) -> str | None:
        words = line.split(maxsplit=2)
        head = words[0]
        if head in ("/bye", "/exit"):
            return "bye"
        if head in ("/?", "/help"):
            click.echo(HELP)
        elif head == "/clear":
            self.messages.clear()
            click.echo("Cleared session context")
        elif head == "/set":
            self._set(words[1:])
        elif head == "/show":
            self._show(words[1] if len(words) > 1 else "info")
        else:
            click.echo(f"Unknown command '{head}'. Type /? for help")
        return None

    def _set(self, args: list[str]) -> None:
        if not args:
            click.echo("Usage: /set parameter|system|format|noformat|verbose|quiet|think|nothink ...")
            return
        what, rest = args[0], args[1] if len(args) > 1 else ""
        if what == "parameter":
            self._set_parameter(rest)
        elif what == "system":
            self.system = rest.strip().strip('"')
            click.echo("Set system message.")
        else:
            toggles = {"format": ("format", "json"), "noformat": ("format", None), "verbose": ("verbose", True),
                       "quiet": ("verbose", False), "think": ("think", True), "nothink": ("think", False)}
            if what not in toggles:
                click.echo(f"Unknown setting '{what}'")
                return
            attr, value = toggles[what]
            setattr(self, attr, value)
            click.echo(f"Set '{what}' mode.")

    def _set_parameter(self, rest: str) -> None:
        parts = shlex.split(rest)
        if len(parts) < 2 or parts[0] not in OPTION_TYPES:
            click.echo("Usage: /set parameter <name> <value>; names: " + ", ".join(sorted(OPTION_TYPES)))
            return
        name, values = parts[0], parts[1:]
        try:
            self.options[name] = coerce_option(name, values if name == "stop" else _number(values[0]))
        except (BadRequest, ValueError) as exc:
            click.echo(f"Couldn't set parameter: {exc}")
            return
        click.echo(f"Set parameter '{name}' to '{', '.join(values)}'")

    def _show(self, what: str) -> None:
        info = self.client.request("POST", "/api/show", {"model": self.model})
        if what == "info":
            details = info.get("details", {})
            click.echo(f"  family {details.get('family')}  parameters {details.get('parameter_size')}  "
                       f"quantization {details.get('quantization_level')}")
            click.echo("  capabilities " + ", ".join(info.get("capabilities", [])))
        elif what in ("parameters", "system", "template", "license", "modelfile"):
            if what == "system" and self.system:
                click.echo(self.system)
            elif what == "parameters" and self.options:
                click.echo("\n".join(f"{k:<30} {v}" for k, v in self.options.items()))
            else:
                click.echo(info.get(what) or f"No {what} was specified for this model.")
        else:
            click.echo("Usage: /show info|parameters|system|template|license|modelfile")


def _number(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return float(text) if any(c in text for c in ".eE") else int(text)


def _keepalive_value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _read_message() -> str | None:
    line = input(">>> ")
    if line.strip().startswith('"""'):
        parts = [line.strip()[3:]]
        while not parts[-1].rstrip().endswith('"""'):
            parts.append(input("... "))
        parts[-1] = parts[-1].rstrip()[:-3]
        return "\n".join(parts).strip() or None
    return line.strip() or None


def _print_stats(final: dict[str, Any]) -> None:
    def secs(key: str) -> float:
        return float(final.get(key, 0)) / 1e9

    prompt_n, eval_n = final.get("prompt_eval_count", 0), final.get("eval_count", 0)
    lines = [f"total duration:       {secs('total_duration'):.3f}s",
             f"load duration:        {secs('load_duration'):.3f}s",
             f"prompt eval count:    {prompt_n} token(s)",
             f"prompt eval duration: {secs('prompt_eval_duration'):.3f}s"]
    if secs("prompt_eval_duration"):
        lines.append(f"prompt eval rate:     {prompt_n / secs('prompt_eval_duration'):.2f} tokens/s")
    lines += [f"eval count:           {eval_n} token(s)", f"eval duration:        {secs('eval_duration'):.3f}s"]
    if secs("eval_duration"):
        lines.append(f"eval rate:            {eval_n / secs('eval_duration'):.2f} tokens/s")
    click.echo("\n".join(lines), err=True)
