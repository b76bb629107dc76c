"""Running a parse tree: pipelines, variables and their scopes, if/with/range, and function calls."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ember.gotemplate.errors import TemplateError, template_error
from ember.gotemplate.functions import FUNCTIONS, SHORT_CIRCUIT, Call
from ember.gotemplate.nodes import (
    Action,
    Arg,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Function,
    Literal,
    Loop,
    Node,
    Pipe,
    SubPipe,
    Text,
    Variable,
)
from ember.gotemplate.parser import parse
from ember.gotemplate.values import field, go_print, truth

# A template comes with a request (``template``) or a Modelfile: its work is bounded so that no single
# request can hold the event loop. Real prompt templates take a few hundred steps per message.
MAX_STEPS = 1_000_000
MAX_OUTPUT_CHARS = 16 * 1024 * 1024


def render(template: str, data: Mapping[str, Any]) -> str:
    """Execute a Go template against ``data`` (Go field names as keys; Struct values allowed)."""
    return execute(parse(template), data)


def execute(nodes: Sequence[Node], data: Mapping[str, Any]) -> str:
    executor = _Executor(data)
    try:
        executor.run(nodes, data)
    except RecursionError:
        raise TemplateError("template: nesting too deep") from None
    return "".join(executor.out)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_VALUE = object()


class _Executor:
    def __init__(self, root: Any) -> None:
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.variables: list[list[Any]] = [["$", root]]

    def run(self, nodes: Sequence[Node], dot: Any) -> None:
        for node in nodes:
            self._tick()
            self._walk(node, dot)

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"template: execution exceeds {MAX_STEPS} steps")

    def _emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT_CHARS:
            raise TemplateError(f"template: output exceeds {MAX_OUTPUT_CHARS} characters")
        self.out.append(text)

    def _walk(self, node: Node, dot: Any) -> None:
        if isinstance(node, Text):
            self._emit(node.text)
        elif isinstance(node, Action):
            value = self._pipe(node.pipe, dot)
            if not node.pipe.declare:
                self._emit(go_print(value))
        elif isinstance(node, Loop):
            raise _Break() if node.kind == "break" else _Continue()
        elif node.kind == "range":
            self._range(node, dot)
        else:
            self._if_or_with(node, dot)

    # ------------------------------------------------------------------------------------------ control

    def _if_or_with(self, node: Branch, dot: Any) -> None:
        mark = len(self.variables)
        value = self._pipe(node.pipe, dot)
        if truth(value):
            self.run(node.body, value if node.kind == "with" else dot)
        elif node.orelse is not None:
            self.run(node.orelse, dot)
        del self.variables[mark:]

    def _range(self, node: Branch, dot: Any) -> None:
        mark = len(self.variables)
        value = self._pipe(Pipe(node.pipe.commands), dot)
        empty = True
        for key, item in _iterate(value, node.pipe.commands[0].line):
            empty = False
            self._tick()
            if len(node.pipe.declare) == 1:
                self.variables.append([node.pipe.declare[0], item])
            elif len(node.pipe.declare) == 2:
                self.variables += [[node.pipe.declare[0], key], [node.pipe.declare[1], item]]
            try:
                self.run(node.body, item)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.variables[mark:]
        if empty and node.orelse is not None:
            self.run(node.orelse, dot)

    # ------------------------------------------------------------------------------------------ pipelines

    def _pipe(self, pipe: Pipe, dot: Any) -> Any:
        value: Any = _NO_VALUE
        for command in pipe.commands:
            value = self._command(command, dot, value)
        for name in pipe.declare:
            if pipe.assign:
                self._variable_slot(name)[1] = value
            else:
                self.variables.append([name, value])
        return value

    def _command(self, command: Command, dot: Any, piped: Any) -> Any:
        first = command.args[0]
        if isinstance(first, Function):
            return self._call(first.name, command.args[1:], dot, piped, command.line)
        if len(command.args) > 1 or piped is not _NO_VALUE:
            raise template_error(command.line, "can't give argument to non-function")
        return self._arg(first, dot, command.line)

    def _call(self, name: str, arg_nodes: Sequence[Arg], dot: Any, piped: Any, line: int) -> Any:
        thunks: list[Callable[[], Any]] = [functools.partial(self._arg, a, dot, line) for a in arg_nodes]
        if piped is not _NO_VALUE:
            thunks.append(lambda: piped)
        if name in SHORT_CIRCUIT:
            return _short_circuit(name, thunks, line)
        return FUNCTIONS[name](Call(name, [thunk() for thunk in thunks], line))

    def _arg(self, node: Arg, dot: Any, line: int) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Field):
            return _chain(dot, node.names, line)
        if isinstance(node, Variable):
            return _chain(self._variable_slot(node.name)[1], node.names, line)
        if isinstance(node, Chain):
            return _chain(self._arg(node.node, dot, line), node.names, line)
        if isinstance(node, SubPipe):
            return self._pipe(node.pipe, dot)
        return self._call(node.name, (), dot, _NO_VALUE, line)

    def _variable_slot(self, name: str) -> list[Any]:
        for slot in reversed(self.variables):
            if slot[0] == name:
                found: list[Any] = slot
                return found
        raise TemplateError(f'template: undefined variable "{name}"')


def _short_circuit(name: str, thunks: Sequence[Callable[[], Any]], line: int) -> Any:
    """``and``/``or``: the first argument that decides the result, evaluating no further; else the last."""
    if not thunks:
        raise template_error(line, f"wrong number of args for {name}: want at least 1 got 0")
    value: Any = None
    for thunk in thunks:
        value = thunk()
        if truth(value) == (name == "or"):
            return value
    return value


def _iterate(value: Any, line: int) -> Iterator[tuple[Any, Any]]:
    if value is None:
        return iter(())
    if isinstance(value, Mapping):
        return ((k, value[k]) for k in sorted(value))  # Go ranges over map keys in sorted order
    if isinstance(value, list | tuple):
        return enumerate(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ((i, i) for i in range(value))
    raise template_error(line, f"range can't iterate over {go_print(value)}")


def _chain(value: Any, names: Sequence[str], line: int) -> Any:
    for name in names:
        value = field(value, name, line)
    return value
