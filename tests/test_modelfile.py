from __future__ import annotations

from pathlib import Path

import pytest

from ember.errors import BadRequest
from ember.modelfile import (
    ModelfileError,
    go_sharp_value,
    go_value,
    parse_modelfile,
    render_modelfile,
    render_parameters,
)

LLAMA_TEMPLATE = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}"""


def test_full_modelfile_becomes_create_fields() -> None:
    text = f'''# a comment
FROM llama3.2:1b
parameter temperature 0.6
PARAMETER num_ctx 8192
PARAMETER stop <|start_header_id|>
PARAMETER stop "<|eot_id|>"
PARAMETER use_mmap false
TEMPLATE """{LLAMA_TEMPLATE}"""
SYSTEM You are Mario from "Super Mario Bros".
LICENSE """MIT
text"""
LICENSE Apache-2.0
MESSAGE user Is Toronto in Canada?
MESSAGE assistant yes
REQUIRES 0.14.0
'''
    fields = parse_modelfile(text).to_create_fields()
    assert fields == {
        "from": "llama3.2:1b",
        "parameters": {"temperature": 0.6, "num_ctx": 8192, "stop": ["<|start_header_id|>", "<|eot_id|>"],
                       "use_mmap": False},
        "template": LLAMA_TEMPLATE,
        "system": 'You are Mario from "Super Mario Bros".',
        "license": ["MIT\ntext", "Apache-2.0"],
        "messages": [{"role": "user", "content": "Is Toronto in Canada?"},
                     {"role": "assistant", "content": "yes"}],
        "requires": "0.14.0",
    }
    assert isinstance(fields["parameters"]["num_ctx"], int)


def test_double_quoted_value_spans_lines_and_triple_may_hold_quotes() -> None:
    parsed = parse_modelfile('FROM x\nSYSTEM "line one\nline two"\nTEMPLATE """say "hi"\n"""\n')
    assert parsed.system == "line one\nline two"
    assert parsed.template == 'say "hi"\n'


def test_empty_quoted_value_is_a_value() -> None:
    assert parse_modelfile('FROM x\nSYSTEM ""').system == ""


def test_bom_and_crlf_are_tolerated() -> None:
    parsed = parse_modelfile("\ufeffFROM x\r\nPARAMETER top_k 20\r\n")
    assert parsed.from_ == "x"
    assert parsed.parameters == {"top_k": 20}


def test_hash_inside_a_value_is_not_a_comment() -> None:
    assert parse_modelfile("FROM x\nSYSTEM You are #1").system == "You are #1"


def test_missing_from() -> None:
    with pytest.raises(ModelfileError, match="^no FROM line$"):
        parse_modelfile("SYSTEM hi\n")


def test_unknown_command_names_the_line() -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile("FROM x\n\nFOO bar\n")
    assert info.value.message == (
        '(line 3): command must be one of "from", "license", "template", "system", "adapter", '
        '"parameter", "message", or "requires"'
    )
    assert isinstance(info.value, BadRequest)


def test_unknown_parameter_names_the_line() -> None:
    text = "FROM x\n" + "# filler\n" * 5 + "PARAMETER foo 1\n"
    with pytest.raises(ModelfileError, match=r"^\(line 7\): unknown parameter 'foo'$"):
        parse_modelfile(text)


def test_unterminated_quotes_name_the_opening_line() -> None:
    with pytest.raises(ModelfileError, match=r'^\(line 2\): unterminated """ string$'):
        parse_modelfile('FROM x\nTEMPLATE """{{ .Prompt }}\nmore\n')
    with pytest.raises(ModelfileError, match=r'^\(line 3\): unterminated " string$'):
        parse_modelfile('FROM x\n\nSYSTEM "open')


def test_bad_message_role() -> None:
    with pytest.raises(ModelfileError, match=r'^\(line 2\): message role must be one of'):
        parse_modelfile("FROM x\nMESSAGE tool hello\n")


def test_parameter_values_are_typed_and_bad_values_rejected() -> None:
    parsed = parse_modelfile("FROM x\nPARAMETER seed -3\nPARAMETER use_mmap TRUE\nPARAMETER top_p 1\n")
    assert parsed.parameters == {"seed": -3, "use_mmap": True, "top_p": 1.0}
    assert isinstance(parsed.parameters["top_p"], float)
    with pytest.raises(ModelfileError, match=r"^\(line 2\): invalid value '0.5' for parameter 'num_ctx'"):
        parse_modelfile("FROM x\nPARAMETER num_ctx 0.5\n")
    with pytest.raises(ModelfileError, match="parameter 'use_mmap'"):
        parse_modelfile("FROM x\nPARAMETER use_mmap maybe\n")


def test_legacy_parameter_is_dropped_with_a_warning() -> None:
    parsed = parse_modelfile("FROM x\nPARAMETER mirostat 2\nPARAMETER top_k 5\n")
    assert parsed.parameters == {"top_k": 5}
    assert parsed.warnings == ["parameter mirostat is deprecated and was ignored"]


def test_missing_value_is_an_error() -> None:
    with pytest.raises(ModelfileError, match=r"^\(line 1\): missing value for FROM$"):
        parse_modelfile("FROM\n")


def test_from_existing_file_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    parsed = parse_modelfile("FROM ./model.gguf\nADAPTER lora.gguf\n", base_dir=tmp_path)
    assert parsed.from_path == tmp_path / "model.gguf"
    fields = parsed.to_create_fields()
    assert fields["from"] == str(tmp_path / "model.gguf")
    assert fields["adapters"] == [str(tmp_path / "lora.gguf")]


def test_from_missing_path_stays_a_model_name(tmp_path: Path) -> None:
    parsed = parse_modelfile("FROM ./nothing-here.gguf\n", base_dir=tmp_path)
    assert parsed.from_path is None
    assert parsed.to_create_fields()["from"] == "./nothing-here.gguf"


def test_from_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert parse_modelfile("FROM ~/m.gguf").to_create_fields()["from"] == str(tmp_path / "m.gguf")


def test_from_digest() -> None:
    digest = "sha256-" + "a" * 64
    assert parse_modelfile(f"FROM {digest}").to_create_fields()["from"] == "sha256:" + "a" * 64


def test_render_modelfile_matches_ollama_show() -> None:
    text = render_modelfile(
        name="llama3.2:latest",
        model_path="/models/blobs/sha256-abc",
        template="{{ .Prompt }}",
        system="You are Mario.",
        params={"stop": ["<|start_header_id|>", "<|eot_id|>"], "temperature": 0.6, "num_ctx": 4096},
        licenses=["LLAMA 3.2 LICENSE\nline two"],
        messages=[{"role": "user", "content": "Is Toronto in Canada?"}, {"role": "assistant", "content": "yes"}],
        adapters=["/models/blobs/sha256-def"],
    )
    assert text == (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM llama3.2:latest\n\n"
        "FROM /models/blobs/sha256-abc\n"
        "ADAPTER /models/blobs/sha256-def\n"
        "TEMPLATE {{ .Prompt }}\n"
        "SYSTEM You are Mario.\n"
        "PARAMETER stop <|start_header_id|>\n"
        "PARAMETER stop <|eot_id|>\n"
        "PARAMETER temperature 0.6\n"
        "PARAMETER num_ctx 4096\n"
        'LICENSE "LLAMA 3.2 LICENSE\nline two"\n'
        "MESSAGE user Is Toronto in Canada?\n"
        "MESSAGE assistant yes\n"
    )


def test_render_quotes_only_multiline_or_edge_spaced_values() -> None:
    text = render_modelfile(name="m:latest", model_path="/b", template='say "x"\n', system=" padded",
                            params={"temperature": 1.0})
    assert 'TEMPLATE """say "x"\n"""\n' in text
    assert 'SYSTEM " padded"\n' in text
    assert "PARAMETER temperature 1\n" in text


def test_rendered_modelfile_parses_back_to_the_same_fields() -> None:
    params = {"stop": ["<|im_end|>", "a b"], "temperature": 0.25, "num_predict": 128, "use_mmap": True}
    text = render_modelfile(name="m:latest", model_path="/b", template=LLAMA_TEMPLATE, system="Be\nbrief",
                            params=params, licenses=["L1"], messages=[{"role": "user", "content": " hi "}])
    fields = parse_modelfile(text).to_create_fields()
    assert fields["template"] == LLAMA_TEMPLATE
    assert fields["system"] == "Be\nbrief"
    assert fields["parameters"] == params
    assert fields["license"] == ["L1"]
    assert fields["messages"] == [{"role": "user", "content": " hi "}]


def test_render_parameters_uses_go_formatting() -> None:
    text = render_parameters({"stop": ["<|eot_id|>", 'say "x"\n'], "temperature": 0.6, "top_k": 40,
                              "use_mmap": False, "repeat_penalty": 1.0})
    assert text.split("\n") == [
        'stop                           "<|eot_id|>"',
        'stop                           "say \\"x\\"\\n"',
        "temperature                    0.6",
        "top_k                          40",
        "use_mmap                       false",
        "repeat_penalty                 1",
    ]


@pytest.mark.parametrize(("value", "expected"), [
    (0.6, "0.6"), (1.0, "1"), (1e6, "1e+06"), (123456.0, "123456"), (1.5e-7, "1.5e-07"), (-0.25, "-0.25"),
    (True, "true"), (7, "7"),
])
def test_go_value(value: object, expected: str) -> None:
    assert go_value(value) == expected


def test_go_sharp_value_escapes_control_and_keeps_unicode() -> None:
    assert go_sharp_value("é\t\x01\u2028") == '"é\\t\\x01\\u2028"'


def test_an_unknown_home_directory_is_just_a_path_that_does_not_exist() -> None:
    # Found by the parser fuzzer: Path("~ x").expanduser() raises RuntimeError.
    assert parse_modelfile('FROM ~ """').from_ == '~ """'
    assert parse_modelfile("FROM ~nosuchuser/model.gguf\n", Path("/tmp")).from_path is None


def test_a_from_path_the_os_refuses_is_not_a_file() -> None:
    # Found by the parser fuzzer: Path.exists() raises for a name longer than NAME_MAX.
    assert parse_modelfile("FROM " + "9" * 5000 + "\n", Path("/tmp")).from_path is None
