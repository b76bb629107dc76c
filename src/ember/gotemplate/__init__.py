"""The subset of Go's text/template that Ollama Modelfile TEMPLATEs use, and Ollama's prompt rendering modes.

Supported: text with ``{{- ``/`` -}}`` trimming, comments, fields and chains (``.A.B``, ``$x.A``, ``(pipe).A``),
variables (``$``, ``:=``, ``=``), pipelines, ``if``/``else if``/``else``/``with``/``else with``/``range``
(with ``break``/``continue``), literals, and the functions in ``functions.FUNCTIONS`` plus ``and``/``or``.
Missing keys evaluate to nil, which prints as the empty string (``missingkey=zero`` with Ollama's typed data).
``define``/``template``/``block`` and method calls are not supported. docs/modelfile.md lists every difference
from Go.

Modules, in pipeline order: ``lexer`` (tokens), ``nodes`` and ``parser`` (the parse tree), ``execute``
(evaluation and variables), ``functions`` and ``printf`` (template functions), ``values`` (Go's view of
values: truth, printing, JSON), ``structs`` (Ollama's API types) and ``prompts`` (Ollama's rendering modes).
"""

from ember.gotemplate.errors import TemplateError
from ember.gotemplate.execute import render
from ember.gotemplate.functions import KNOWN_FUNCTIONS
from ember.gotemplate.parser import parse_template
from ember.gotemplate.printf import go_sprintf
from ember.gotemplate.prompts import prompt_from_template, references
from ember.gotemplate.structs import message_struct, tool_call_struct, tool_struct
from ember.gotemplate.values import Struct, go_float, go_json, go_print, go_quote, truth

__all__ = [
    "KNOWN_FUNCTIONS",
    "Struct",
    "TemplateError",
    "go_float",
    "go_json",
    "go_print",
    "go_quote",
    "go_sprintf",
    "message_struct",
    "parse_template",
    "prompt_from_template",
    "references",
    "render",
    "tool_call_struct",
    "tool_struct",
    "truth",
]
