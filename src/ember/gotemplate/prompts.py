"""Ollama's rendering modes: fill-in-the-middle, ``.Messages`` templates, and legacy per-turn templates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ember.gotemplate.execute import execute
from ember.gotemplate.nodes import Action, Arg, Branch, Chain, Command, Field, Node, Pipe, SubPipe, Variable
from ember.gotemplate.parser import parse
from ember.gotemplate.structs import message_struct, tool_struct


def prompt_from_template(
    template: str,
    *,
    system: str | None,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    suffix: str | None = None,
    think: bool | None = None,
) -> str:
    """Render a prompt the way Ollama's template.Execute does.

    ``messages`` and ``tools`` are in API shape (``role``, ``content``, ``tool_calls``…); ``system``, when
    given, goes first as a system message. With a suffix the template gets Prompt/Suffix (fill-in-the-middle);
    a template that mentions ``.Messages`` is rendered once; otherwise it is a legacy System/Prompt/Response
    template, rendered once per turn with the last turn cut after ``{{ .Response }}``.
    """
    nodes = parse(template)
    all_messages = ([{"role": "system", "content": system}] if system else []) + list(messages)
    joined_system, collated = _collate(all_messages)
    think_vars = {"Think": bool(think), "ThinkLevel": "", "IsThinkSet": think is not None}
    prompt = next((m["content"] for m in reversed(collated) if m["role"] == "user"), "")
    if suffix and prompt:
        return execute(nodes, {"Prompt": prompt, "Suffix": suffix, "Response": "", **think_vars})
    if references(template, "Messages"):
        return execute(nodes, {
            "System": joined_system,
            "Messages": [message_struct(m) for m in collated],
            "Tools": [tool_struct(t) for t in tools or ()],
            "Response": "",
            **think_vars,
        })
    return _legacy_prompt(nodes, collated, think_vars)


# ---------------------------------------------------------------------------------------------- Vars()


def references(template: str, name: str) -> bool:
    """Whether any field chain in the template names ``name`` (case-insensitive), as Ollama's Vars() does."""
    wanted = name.lower()
    return any(field.lower() == wanted for field in _identifiers(parse(template)))


def _identifiers(nodes: Sequence[Node]) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, Action):
            yield from _pipe_identifiers(node.pipe)
        elif isinstance(node, Branch):
            yield from _pipe_identifiers(node.pipe)
            yield from _identifiers(node.body)
            yield from _identifiers(node.orelse or ())


def _pipe_identifiers(pipe: Pipe) -> Iterator[str]:
    for command in pipe.commands:
        for arg in command.args:
            if isinstance(arg, Field | Variable | Chain):
                yield from arg.names
            if isinstance(arg, Chain) and isinstance(arg.node, SubPipe):
                yield from _pipe_identifiers(arg.node.pipe)
            if isinstance(arg, SubPipe):
                yield from _pipe_identifiers(arg.pipe)


# ---------------------------------------------------------------------------------------------- turns


def _collate(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """All system contents joined by a blank line; consecutive same-role messages merged (tool excepted)."""
    systems: list[str] = []
    collated: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content") or ""
        role = message.get("role", "")
        if role == "system":
            systems.append(content)
        if collated and collated[-1]["role"] == role and role != "tool":
            collated[-1]["content"] += "\n\n" + content
        else:
            collated.append({**message, "role": role, "content": content})
    return "\n\n".join(systems), collated


def _legacy_prompt(nodes: tuple[Node, ...], messages: Sequence[Mapping[str, Any]],
                   think_vars: Mapping[str, Any]) -> str:
    parts: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush() -> None:
        parts.append(execute(nodes, {**turn, **think_vars}))
        turn.update(System="", Prompt="", Response="")

    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = content
        elif role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = content
        elif role == "assistant":
            turn["Response"] = content
    parts.append(execute(_ResponseCut().nodes(nodes), {**turn, **think_vars}))
    return "".join(parts)


class _ResponseCut:
    """Ollama's deleteNode walk: keep everything up to the first ``.Response`` field, drop what follows.

    Conditions of if/with/range are not searched, only their bodies, as in Ollama.
    """

    def __init__(self) -> None:
        self.cut = False

    def nodes(self, items: Sequence[Node]) -> tuple[Node, ...]:
        kept: list[Node] = []
        for node in items:
            new = self._node(node)
            if new is not None:
                kept.append(new)
        return tuple(kept)

    def _node(self, node: Node) -> Node | None:
        if self.cut:
            return None
        if isinstance(node, Branch):
            body = self.nodes(node.body)  # before orelse: a cut in the body drops the whole else branch
            orelse = None if node.orelse is None else self.nodes(node.orelse)
            return Branch(node.kind, node.pipe, body, orelse)
        if isinstance(node, Action):
            return self._action(node)
        return node

    def _action(self, node: Action) -> Action | None:
        commands: list[Command] = []
        for command in node.pipe.commands:
            args = [arg for arg in map(self._arg, command.args) if arg is not None]
            if not args:
                return None
            commands.append(Command(tuple(args), command.line))
        return Action(Pipe(tuple(commands), node.pipe.declare, node.pipe.assign))

    def _arg(self, arg: Arg) -> Arg | None:
        if self.cut:
            return None
        if isinstance(arg, Field) and "Response" in arg.names:
            self.cut = True
        return arg
