"""Tokens to parse tree, with Go's parse-time checks (declared variables, known functions, break outside range)."""

from __future__ import annotations

import functools

from ember.gotemplate.errors import TemplateError, template_error
from ember.gotemplate.functions import KNOWN_FUNCTIONS
from ember.gotemplate.lexer import Token, tokenize
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


@functools.lru_cache(maxsize=128)
def parse(template: str) -> tuple[Node, ...]:
    try:
        return _Parser(tokenize(template)).parse()
    except RecursionError:  # thousands of nested parentheses or blocks: refused like nesting in execute
        raise TemplateError("template: nesting too deep") from None


def parse_template(template: str) -> None:
    """Raise TemplateError if ``template`` does not parse (used to validate TEMPLATE at create time)."""
    parse(template)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.variables = ["$"]
        self.range_depth = 0

    def parse(self) -> tuple[Node, ...]:
        nodes, stop = self._list(())
        if stop is not None:
            raise template_error(self._peek().line, f"unexpected {{{{{stop}}}}}")
        return nodes

    def _peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def _next(self) -> Token:
        token = self._peek()
        self.index += 1
        return token

    def _expect(self, kind: str, context: str) -> Token:
        token = self._next()
        if token.kind != kind:
            found = token.value if token.value is not None else token.kind
            raise template_error(token.line, f"unexpected {found!r} in {context}")
        return token

    # ------------------------------------------------------------------------------------------ nodes

    def _list(self, stops: tuple[str, ...]) -> tuple[tuple[Node, ...], str | None]:
        """Nodes up to one of ``stops`` (``end``/``else``, returned with the keyword consumed) or EOF."""
        nodes: list[Node] = []
        while True:
            token = self._next()
            if token.kind == "eof":
                if stops:
                    raise template_error(token.line, "unexpected EOF: missing {{end}}")
                return tuple(nodes), None
            if token.kind == "text":
                nodes.append(Text(token.value))
                continue
            word = self._peek()
            if word.kind == "keyword" and word.value in ("end", "else"):
                if word.value not in stops:
                    raise template_error(word.line, f"unexpected {{{{{word.value}}}}}")
                self._next()
                return tuple(nodes), str(word.value)
            nodes.append(self._action_or_control())

    def _action_or_control(self) -> Node:
        word = self._peek()
        if word.kind == "keyword" and word.value in ("if", "with", "range"):
            self._next()
            return self._control(str(word.value))
        if word.kind == "keyword" and word.value in ("break", "continue"):
            self._next()
            if self.range_depth == 0:
                raise template_error(word.line, f"{{{{{word.value}}}}} outside {{{{range}}}}")
            self._expect("close", word.value)
            return Loop(str(word.value))
        if word.kind == "keyword" and word.value in ("define", "template", "block"):
            raise template_error(word.line, f"{{{{{word.value}}}}} is not supported")
        return Action(self._pipeline("command", allow_declare=True))

    def _control(self, kind: str) -> Branch:
        mark = len(self.variables)
        pipe = self._pipeline(kind, allow_declare=True)
        self.range_depth += kind == "range"
        body, stop = self._list(("end", "else"))
        self.range_depth -= kind == "range"
        orelse: tuple[Node, ...] | None = None
        if stop == "else":
            orelse = self._else_branch(kind)
        else:
            self._expect("close", "end")
        del self.variables[mark:]
        return Branch(kind, pipe, body, orelse)

    def _else_branch(self, kind: str) -> tuple[Node, ...]:
        follow = self._peek()
        if kind != "range" and follow.kind == "keyword" and follow.value == kind:
            # ``{{else if …}}`` is an if nested in the else branch that shares the final {{end}}.
            self._next()
            return (self._control(kind),)
        self._expect("close", "else")
        orelse, _ = self._list(("end",))
        self._expect("close", "end")
        return orelse

    # ------------------------------------------------------------------------------------------ pipelines

    def _pipeline(self, context: str, *, allow_declare: bool, closer: str = "close") -> Pipe:
        declare, assign = self._declaration(context) if allow_declare else ((), False)
        commands = [self._command(context)]
        while self._peek().kind == "pipe":
            self._next()
            command = self._command(context)
            if not isinstance(command.args[0], Function):
                raise template_error(command.line, f"non executable command in pipeline stage {len(commands) + 1}")
            commands.append(command)
        self._expect(closer, context)
        if declare and not assign:
            self.variables.extend(declare)
        return Pipe(tuple(commands), declare, assign)

    def _declaration(self, context: str) -> tuple[tuple[str, ...], bool]:
        first, second = self._peek(), self._peek(1)
        if first.kind != "var" or second.kind not in ("declare", "assign", "comma"):
            return (), False
        names = [str(self._next().value)]
        if second.kind == "comma":
            if context != "range":
                raise template_error(first.line, "too many declarations in " + context)
            self._next()
            names.append(str(self._expect("var", "range declaration").value))
            if self._peek().kind != "declare":
                raise template_error(first.line, "range can only initialize variables")
        operator = self._next()
        if operator.kind not in ("declare", "assign"):
            raise template_error(operator.line, f"unexpected {operator.kind!r} in declaration")
        assign = operator.kind == "assign"
        if assign:
            for name in names:
                self._check_variable(name, first.line)
        return tuple(names), assign

    def _command(self, context: str) -> Command:
        line = self._peek().line
        args: list[Arg] = []
        while self._peek().kind not in ("pipe", "close", "rparen", "eof"):
            args.append(self._operand())
        if not args:
            raise template_error(line, f"missing value for {context}")
        if isinstance(args[0], Literal) and args[0].value is None:
            raise template_error(line, "nil is not a command")
        return Command(tuple(args), line)

    # ------------------------------------------------------------------------------------------ operands

    def _operand(self) -> Arg:
        term = self._term()
        names = self._chained_fields()
        if not names:
            return term
        if isinstance(term, Field):
            return Field(term.names + names)
        if isinstance(term, Variable):
            return Variable(term.name, term.names + names)
        if isinstance(term, Dot | Literal | Function):
            raise template_error(self._peek().line, "unexpected . after term")
        return Chain(term, names)

    def _chained_fields(self) -> tuple[str, ...]:
        names: list[str] = []
        while self._peek().kind == "field" and not self._peek().spaced:
            names.append(str(self._next().value))
        return tuple(names)

    def _term(self) -> Arg:
        token = self._next()
        if token.kind == "field":
            return Field((str(token.value),) + self._chained_fields())
        if token.kind == "dot":
            return Dot()
        if token.kind == "var":
            self._check_variable(str(token.value), token.line)
            return Variable(str(token.value))
        if token.kind in ("string", "number"):
            return Literal(token.value)
        if token.kind == "keyword" and token.value in ("true", "false", "nil"):
            return Literal({"true": True, "false": False, "nil": None}[token.value])
        if token.kind == "ident":
            if token.value not in KNOWN_FUNCTIONS:
                raise template_error(token.line, f'function "{token.value}" not defined')
            return Function(str(token.value))
        if token.kind == "lparen":
            return SubPipe(self._pipeline("parenthesized pipeline", allow_declare=True, closer="rparen"))
        found = token.value if token.value is not None else token.kind
        raise template_error(token.line, f"unexpected {found!r} in operand")

    def _check_variable(self, name: str, line: int) -> None:
        if name not in self.variables:
            raise template_error(line, f'undefined variable "{name}"')
