"""The parse tree: operands (``Arg``), pipelines, and the nodes a template body is made of (``Node``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Dot:
    pass


@dataclass(frozen=True)
class Field:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Function:
    name: str


@dataclass(frozen=True)
class Chain:
    node: Arg
    names: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    args: tuple[Arg, ...]
    line: int


@dataclass(frozen=True)
class Pipe:
    commands: tuple[Command, ...]
    declare: tuple[str, ...] = ()
    assign: bool = False  # ``$x = …`` sets an existing variable instead of declaring one


@dataclass(frozen=True)
class SubPipe:
    pipe: Pipe


Arg = Literal | Dot | Field | Variable | Function | Chain | SubPipe


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Action:
    pipe: Pipe


@dataclass(frozen=True)
class Branch:
    kind: str  # if with range
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...] | None


@dataclass(frozen=True)
class Loop:
    kind: str  # break continue


Node = Text | Action | Branch | Loop
