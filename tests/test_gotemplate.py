from __future__ import annotations

from typing import Any

import pytest

from ember.errors import BadRequest, TemplateError
from ember.gotemplate import prompt_from_template, references, render

LLAMA3 = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""

CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

MISTRAL = """{{- if .Messages }}
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}
{{- else }}[INST] {{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}[/INST]
{{- end }} {{ .Response }}
{{- if .Response }}</s>
{{- end }}"""

LEGACY_CHATML = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


# -------------------------------------------------------------------------- real templates, Ollama's modes


def test_llama3_style_conversation() -> None:
    prompt = prompt_from_template(LLAMA3, system="You are terse.",
                                  messages=[user("Hi"), assistant("Hello!"), user("Bye")], tools=None)
    assert prompt == (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_system_messages_are_joined_into_system_and_same_roles_merged() -> None:
    messages = [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, user("x"), user("y")]
    prompt = prompt_from_template(LLAMA3, system=None, messages=messages, tools=[])
    assert prompt == (
        "<|start_header_id|>system<|end_header_id|>\n\nA\n\nB<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nx\n\ny<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chatml_style() -> None:
    prompt = prompt_from_template(CHATML, system="Be kind.", messages=[user("Hi")], tools=[])
    assert prompt == (
        "<|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_mistral_tools_are_listed_before_the_last_user_message() -> None:
    prompt = prompt_from_template(MISTRAL, system=None,
                                  messages=[{"role": "system", "content": "Be brief."}, user("Weather in Paris?")],
                                  tools=[WEATHER_TOOL])
    tool_json = ('{"type":"function","function":{"name":"get_weather","description":"Get the weather",'
                 '"parameters":{"type":"object","required":["city"],'
                 '"properties":{"city":{"type":"string","description":"City name"}}}}}')
    assert prompt == f"[AVAILABLE_TOOLS] [{tool_json}][/AVAILABLE_TOOLS][INST] Be brief.\n\nWeather in Paris?[/INST] "


def test_mistral_tool_call_and_result() -> None:
    messages = [
        user("Weather in Paris?"),
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "22C", "tool_name": "get_weather"},
    ]
    prompt = prompt_from_template(MISTRAL, system=None, messages=messages, tools=[])
    assert prompt == (
        '[INST] Weather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}]</s>'
        '[TOOL_RESULTS] {"content": 22C} [/TOOL_RESULTS] '
    )


def test_legacy_template_renders_per_turn_and_cuts_after_response() -> None:
    prompt = prompt_from_template(LEGACY_CHATML, system="S",
                                  messages=[user("U1"), assistant("A1"), user("U2")], tools=[])
    assert prompt == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    )


def test_legacy_generate_with_default_template() -> None:
    assert prompt_from_template("{{ .Prompt }}", system=None, messages=[user("2+2=")], tools=[]) == "2+2="


def test_legacy_cut_keeps_text_before_response_inside_a_branch() -> None:
    template = "{{ if .Prompt }}Q: {{ .Prompt }}\nA: {{ .Response }} <end>{{ end }} trailer"
    assert prompt_from_template(template, system=None, messages=[user("why")], tools=[]) == "Q: why\nA: "


def test_fill_in_the_middle_uses_prompt_and_suffix() -> None:
    template = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}"
    prompt = prompt_from_template(template, system="ignored", messages=[user("def f():")], tools=[],
                                  suffix="return 1")
    assert prompt == "<PRE> def f(): <SUF>return 1 <MID>"


def test_think_flag_reaches_the_template() -> None:
    template = "{{ range .Messages }}{{ .Content }}{{ end }}{{ if .Think }}<think>{{ else }}<no_think>{{ end }}"
    assert prompt_from_template(template, system=None, messages=[user("q")], tools=[], think=True) == "q<think>"
    assert prompt_from_template(template, system=None, messages=[user("q")], tools=[]) == "q<no_think>"


def test_references_detects_messages_through_variables() -> None:
    assert references("{{ range $.Messages }}{{ end }}", "Messages")
    assert references("{{ if (len .messages) }}{{ end }}", "Messages")
    assert not references("{{ .System }}{{ .Prompt }}", "Messages")


# -------------------------------------------------------------------------- the language


def test_missing_keys_render_empty_and_are_false() -> None:
    assert render("[{{ .Nope }}][{{ .A.B.C }}]{{ if .Nope }}x{{ else }}y{{ end }}", {"A": {}}) == "[][]y"


def test_trim_markers() -> None:
    assert render("a  \n {{- .X -}} \n  b", {"X": 1}) == "a1b"
    assert render("a {{ .X }} b", {"X": 1}) == "a 1 b"
    assert render("{{ -3 }}", {}) == "-3"


def test_comments() -> None:
    assert render("a {{- /* gone */ -}} b{{/* x */}}", {}) == "ab"


def test_go_truthiness() -> None:
    template = "{{ if .V }}T{{ else }}F{{ end }}"
    falsy: tuple[object, ...] = ("", 0, 0.0, False, None, [], {})
    for value in falsy:
        assert render(template, {"V": value}) == "F", value
    for value in ("x", 1, -0.5, True, [0], {"k": 0}):
        assert render(template, {"V": value}) == "T", value


def test_else_if_chain_and_with() -> None:
    template = "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else }}many{{ end }}"
    assert [render(template, {"N": n}) for n in (1, 2, 3)] == ["one", "two", "many"]
    assert render("{{ with .U }}{{ .Name }}{{ else }}anon{{ end }}", {"U": {"Name": "Ann"}}) == "Ann"
    assert render("{{ with .U }}{{ .Name }}{{ else with .V }}v={{ . }}{{ else }}anon{{ end }}", {"V": 3}) == "v=3"


def test_range_forms() -> None:
    data = {"L": ["a", "b", "c"], "M": {"z": 1, "a": 2}}
    assert render("{{ range .L }}{{ . }}{{ end }}", data) == "abc"
    assert render("{{ range $i, $x := .L }}{{ $i }}{{ $x }}{{ end }}", data) == "0a1b2c"
    assert render("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", data) == "a=2;z=1;"
    assert render("{{ range .Empty }}x{{ else }}none{{ end }}", data) == "none"
    assert render("{{ range .L }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}", data) == "ac"
    assert render("{{ range .L }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}", data) == "a"
    assert render("{{ range 3 }}{{ . }}{{ end }}", data) == "012"


def test_variables_root_and_assignment() -> None:
    data = {"System": "S", "L": [1, 2]}
    assert render("{{ range .L }}{{ $.System }}{{ . }}{{ end }}", data) == "S1S2"
    assert render("{{ $n := 0 }}{{ range .L }}{{ $n = . }}{{ end }}{{ $n }}", data) == "2"
    assert render('{{ $x := "out" }}{{ if true }}{{ $x := "in" }}{{ $x }}{{ end }}{{ $x }}', data) == "inout"


def test_last_message_idiom() -> None:
    template = "{{ range $i, $m := .M }}{{ if eq (len (slice $.M $i)) 1 }}last={{ $m }}{{ end }}{{ end }}"
    assert render(template, {"M": ["a", "b", "c"]}) == "last=c"


def test_functions() -> None:
    data = {"L": [1, 2, 3], "M": {"k": "v"}, "S": "héllo", "T": {"a": [1, {"b": "<x>"}]}}
    assert render("{{ len .L }} {{ len .S }} {{ index .L 1 }} {{ index .M \"k\" }}", data) == "3 6 2 v"
    assert render("{{ slice .L 1 }} {{ slice .L 0 2 }} {{ slice .S 0 1 }}", data) == "[2 3] [1 2] h"
    assert render("{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not .L }} {{ and .L .M }}", data) == '0 x false {"k":"v"}'
    assert render("{{ eq 1 2 3 1 }} {{ ne \"a\" \"b\" }} {{ lt 1 2 }} {{ ge 2.5 3 }} {{ eq true 1 }}", data) == \
        "true true true false false"
    assert render("{{ json .T }}", data) == '{"a":[1,{"b":"\\u003cx\\u003e"}]}'
    assert render('{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}', data) == "a1 2b|1 x\n"


def test_printf_verbs() -> None:
    data = {"S": "hi", "N": 42, "F": 3.14159, "L": [1, "a"]}
    assert render('{{ printf "%s|%d|%5d|%-4s|%q|%v|%.2f|%t|%x|%%" .S .N .N .S .S .L .F true .N }}', data) == \
        'hi|42|   42|hi  |"hi"|[1 a]|3.14|true|2a|%'
    assert render('{{ printf "%s %s" "only" }}', data) == "only %!s(MISSING)"
    assert render('{{ printf "%d" "x" }}', data) == "%!d(string=x)"


def test_printf_refuses_giant_widths_as_go_does() -> None:
    # Once, "%99999999d" built a 100 MB string inside the server.
    assert render('{{ printf "%99999999d|" 5 }}', {}) == "%!(BADWIDTH)5|"
    assert render('{{ printf "%.99999999f|" 1.5 }}', {}) == "%!(BADPREC)1.500000|"
    assert render('{{ printf "%' + "9" * 5000 + 'd" 5 }}', {}) == "%!(BADWIDTH)5"
    assert len(render('{{ printf "%1000000d" 5 }}', {})) == 1_000_000


def test_pipelines_pass_the_value_last() -> None:
    assert render('{{ .S | printf "<%s>" }}', {"S": "x"}) == "<x>"
    assert render("{{ .L | len | eq 2 }}", {"L": [1, 2]}) == "true"
    assert render("{{ (index .L 0).Name }}", {"L": [{"Name": "n"}]}) == "n"


def test_literals() -> None:
    assert render("{{ \"a\\tb\" }}|{{ `raw\\n` }}|{{ 'a' }}|{{ 0x1F }}|{{ 1.5 }}|{{ print nil }}", {}) == \
        "a\tb|raw\\n|97|31|1.5|<nil>"


def test_maps_and_lists_print_like_ollama_values() -> None:
    assert render("{{ .M }} {{ .L }}", {"M": {"a": 1}, "L": ["x", 2]}) == '{"a":1} [x 2]'


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("template", "message"), [
    ("{{ frobnicate .X }}", 'function "frobnicate" not defined'),
    ("{{ .X ", "unclosed action"),
    ("{{ if .X }}never closed", "missing {{end}}"),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ else }}", "unexpected {{else}}"),
    ("{{ $y }}", 'undefined variable "$y"'),
    ("{{ }}", "missing value for command"),
    ("{{ break }}", "outside {{range}}"),
    ("{{ template \"x\" }}", "not supported"),
    ("{{ .X | .Y }}", "non executable command in pipeline stage 2"),
    ('{{ "open }}', "unterminated quoted string"),
    ("{{/* open ", "unclosed comment"),
    ("line1\n{{ if }}{{ end }}", "line 2: missing value for if"),
])
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, {})
    assert message in info.value.message
    assert isinstance(info.value, BadRequest)


@pytest.mark.parametrize(("template", "message"), [
    ("{{ index .L 5 }}", "error calling index: index out of range: 5"),
    ("{{ slice .L 2 1 }}", "error calling slice"),
    ("{{ lt 1 \"a\" }}", "incompatible types for comparison"),
    ("{{ len 3 }}", "len of type int"),
    ("{{ .S.Field }}", "can't evaluate field Field in type string"),
    ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2"),
    ("{{ .S 1 }}", "can't give argument to non-function"),
])
def test_execution_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, {"L": [1, 2], "S": "s"})
    assert message in info.value.message


@pytest.mark.parametrize("source", ["{{range 1000000000}}{{end}}", "{{range 100000}}{{range 100000}}x{{end}}{{end}}"])
def test_template_work_is_bounded(source: str) -> None:
    with pytest.raises(TemplateError, match="exceeds 1000000 steps"):
        render(source, {})


def test_template_output_is_bounded() -> None:
    with pytest.raises(TemplateError, match="output exceeds"):
        render("{{range 20000}}{{$.x}}{{end}}", {"x": "y" * 1000})
