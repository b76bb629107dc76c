"""The /api/create pipeline, as a generator of Ollama-style progress dicts (no HTTP here).

Everything that can be wrong with a request (names, field types, parameters, missing blobs, a broken
GGUF) is checked before the first progress item, so the HTTP layer still answers with a proper status.
Nothing is written to the store until the request has been validated, and the manifest is written last.

The ``from`` field may name an existing model, a ``sha256:`` blob, or a GGUF file on the server. The last
form lets any API client make the server read a file it can access. The file is validated as GGUF before
it becomes a blob, so nothing other than a GGUF file is ever stored.
"""

from __future__ import annotations

import ctypes
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ember.errors import BadRequest, BlobNotFound, EmberError, InvalidModelName
from ember.modelfile import expand_user, safe_exists
from ember.names import ModelName
from ember.options import LEGACY_OPTIONS, OPTION_TYPES, coerce_option
from ember.store.digests import is_digest, normalize_digest, sha256_file
from ember.store.files import remove_quietly, temp_path
from ember.store.gguf import GGUFInfo, read_gguf
from ember.store.layers import ModelParts, Progress, build_model_steps
from ember.store.store import ModelStore

log = logging.getLogger(__name__)

_SPARSE_CHECK_FROM = 64 * 1024 * 1024  # smaller files are read quickly whatever they are

# quantize name (case-insensitive) -> llama_ftype
QUANTIZE_TYPES: dict[str, int] = {
    "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7, "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12,
    "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18,
}
QUANTIZABLE_SOURCES = ("F32", "F16", "BF16")
MESSAGE_ROLES = ("system", "user", "assistant", "tool")


@dataclass
class _Source:
    """Where the weights come from: a GGUF to add (``import_path``) or a blob already in the store."""

    gguf: GGUFInfo
    digest: str | None = None
    import_path: Path | None = None
    base: ModelParts | None = None  # set when creating from an existing model
    projectors: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    name: ModelName
    source: _Source
    parts: ModelParts
    quantize: str | None


def create_model(store: ModelStore, body: Mapping[str, Any]) -> Iterator[Progress]:
    """Run a create request; yields progress and ends with ``{"status": "success"}``."""
    plan = _plan(store, _with_modelfile(body))
    yield from _execute(store, plan)


# ------------------------------------------------------------------------------------------- validation


def _with_modelfile(body: Mapping[str, Any]) -> dict[str, Any]:
    """Fold the legacy ``modelfile`` text (Ollama <= 0.5.4 clients) into the JSON form; explicit fields win."""
    fields = {k: v for k, v in body.items() if v is not None}
    text = fields.pop("modelfile", None)
    server_path = fields.pop("path", None)
    if not text:
        return fields
    if not isinstance(text, str):
        raise BadRequest("modelfile must be a string")
    from ember.modelfile import parse_modelfile  # owned elsewhere; imported only when needed

    base_dir = Path(server_path).parent if isinstance(server_path, str) and server_path else Path.cwd()
    return {**parse_modelfile(text, base_dir).to_create_fields(), **fields}


def _plan(store: ModelStore, body: Mapping[str, Any]) -> _Plan:
    name = _model_name(body)
    quantize = _quantize_type(body.get("quantize") or body.get("quantization"))
    source = _source(store, body)
    parts = source.base or ModelParts(model_digest="")
    parts = _apply_overrides(store, parts, body)
    if source.projectors:
        parts.projectors = [*parts.projectors, *source.projectors]
    if quantize and source.gguf.file_type_name not in QUANTIZABLE_SOURCES:
        raise BadRequest(f"quantization is only supported for F16, BF16 and F32 models; this model is "
                         f"{source.gguf.file_type_name}")
    return _Plan(name, source, parts, quantize)


def _model_name(body: Mapping[str, Any]) -> ModelName:
    raw = body.get("model") or body.get("name")
    if not isinstance(raw, str) or not raw:
        raise InvalidModelName()
    return ModelName.parse(raw)


def _quantize_type(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or raw.lower() not in QUANTIZE_TYPES:
        supported = ", ".join(sorted({"q4_K_M", "q4_K_S", "q4_0", "q8_0"}))
        raise BadRequest(f"unsupported quantization type {raw!r} (supported: {supported} and other k-quants)")
    return raw.lower()


def _source(store: ModelStore, body: Mapping[str, Any]) -> _Source:
    source = body.get("from")
    files = body.get("files")
    if source:
        if not isinstance(source, str):
            raise BadRequest("'from' must be a string")
        return _source_from(store, source)
    if files:
        return _source_from_files(store, files)
    raise BadRequest("neither 'from' or 'files' was specified")


def _source_from(store: ModelStore, source: str) -> _Source:
    if is_digest(source):
        return _source_blob(store, normalize_digest(source))
    path = _server_path(source)
    if path is not None:
        return _Source(gguf=read_gguf(path), import_path=path)
    base = store.resolve(source)
    base_parts = ModelParts(
        model_digest=_digest_of(base.model_path),
        template=base.template, system=base.system, params=dict(base.params) or None,
        messages=list(base.messages) or None, licenses=list(base.licenses),
        adapters=[_digest_of(p) for p in base.adapter_paths], projectors=[_digest_of(p) for p in base.projector_paths],
        parent=base.name.display,
    )
    return _Source(gguf=read_gguf(base.model_path), digest=base_parts.model_digest, base=base_parts)


def _digest_of(blob_path: Path) -> str:
    return blob_path.name.replace("sha256-", "sha256:", 1)


def _server_path(source: str) -> Path | None:
    """A GGUF path on the server, or None when ``source`` is a model name.

    Only an explicit path (``/``, ``./``, ``../``, ``~``) or an existing file that cannot be a model name
    (or ends in ``.gguf``) counts as a path, so a stray file in the server's working directory never
    shadows a model of the same name.
    """
    path = expand_user(source)
    explicit = source.startswith(("/", "./", "../", "~"))
    looks_like_a_file = source.lower().endswith(".gguf") or _not_a_name(source)
    if not explicit and not (safe_exists(path, "is_file") and looks_like_a_file):
        return None
    if safe_exists(path, "is_dir"):
        raise BadRequest(f"{source} is a directory; only GGUF files can be imported (convert safetensors "
                         "models to GGUF first)")
    return regular_file(path, source)


def regular_file(path: Path, shown: str) -> Path:
    """``path`` if it is a regular file worth reading; checked before any read, since opening a FIFO blocks
    and hashing a sparse giant takes hours."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BadRequest(f"file {shown} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read {shown}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadRequest(f"{shown} is not a regular file (FIFOs, devices and sockets cannot be imported)")
    allocated = getattr(info, "st_blocks", 0) * 512
    if info.st_size > _SPARSE_CHECK_FROM and allocated * 4 < info.st_size:
        raise BadRequest(f"{shown} is a sparse file ({info.st_size} bytes, {allocated} on disk); "
                         "it cannot be a model")
    return path


def _not_a_name(text: str) -> bool:
    try:
        ModelName.parse(text)
    except InvalidModelName:
        return True
    return False


def _source_blob(store: ModelStore, digest: str) -> _Source:
    if not store.has_blob(digest):
        raise BlobNotFound(f'blob "{digest}" not found')
    return _Source(gguf=read_gguf(store.blob_path(digest)), digest=digest)


def _file_map(store: ModelStore, raw: Any, what: str) -> dict[str, str]:
    """Validate a ``{"relative/name": "sha256:..."}`` map whose blobs must already be uploaded."""
    if not isinstance(raw, Mapping):
        raise BadRequest(f"'{what}' must be an object of file names to digests")
    checked: dict[str, str] = {}
    for file_name, digest in raw.items():
        if not _is_relative(str(file_name)):
            raise BadRequest("file path must be relative")
        if not isinstance(digest, str):
            raise BadRequest("invalid digest format")
        digest = normalize_digest(digest)
        if not store.has_blob(digest):
            raise BlobNotFound(f'blob "{digest}" not found')
        checked[str(file_name)] = digest
    return checked


def _is_relative(name: str) -> bool:
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    return bool(name) and not posix.is_absolute() and not windows.is_absolute() and not windows.drive \
        and ".." not in posix.parts and ".." not in windows.parts


def _source_from_files(store: ModelStore, raw: Any) -> _Source:
    files = _file_map(store, raw, "files")
    ggufs = {name: digest for name, digest in files.items() if name.lower().endswith(".gguf")}
    if not ggufs:
        if any(name.lower().endswith(".safetensors") for name in files):
            raise BadRequest("importing safetensors models is not supported; convert the model to GGUF first")
        raise BadRequest("'files' contains no GGUF file")
    models: list[tuple[str, GGUFInfo]] = []
    projectors: list[str] = []
    for digest in ggufs.values():
        info = read_gguf(store.blob_path(digest))
        if _is_projector(info):
            projectors.append(digest)
        else:
            models.append((digest, info))
    if len(models) != 1:
        raise BadRequest(f"'files' must contain exactly one model GGUF, found {len(models)} "
                         "(split GGUF files are not supported)")
    return _Source(gguf=models[0][1], digest=models[0][0], projectors=projectors)


def _is_projector(info: GGUFInfo) -> bool:
    return info.architecture == "clip" or info.metadata.get("general.type") in ("mmproj", "projector")


def _apply_overrides(store: ModelStore, parts: ModelParts, body: Mapping[str, Any]) -> ModelParts:
    """Request fields replace inherited parts; parameters are merged, the request's values winning."""
    parts = replace(parts, licenses=list(parts.licenses), adapters=list(parts.adapters),
                    projectors=list(parts.projectors))
    template, system = _optional_text(body, "template"), _optional_text(body, "system")
    if template:
        parts.template = template
    if system:
        parts.system = system
    if body.get("parameters"):
        parts.params = {**(parts.params or {}), **parse_parameters(body["parameters"])}
    if body.get("messages"):
        parts.messages = _messages(body["messages"])
    if body.get("license"):
        parts.licenses = _licenses(body["license"])
    if body.get("adapters"):
        parts.adapters = _adapters(store, body["adapters"])
    return parts


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    return value


def parse_parameters(raw: Any) -> dict[str, Any]:
    """Typed model parameters; unknown names are an error, deprecated ones are dropped (as Ollama does)."""
    if not isinstance(raw, Mapping):
        raise BadRequest("'parameters' must be an object")
    unknown = sorted(str(k) for k in raw if k not in OPTION_TYPES and k not in LEGACY_OPTIONS)
    if unknown:
        raise BadRequest("unknown parameter " + ", ".join(f"'{name}'" for name in unknown))
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if name in LEGACY_OPTIONS or value is None:
            continue
        typed[name] = coerce_option(name, _from_text(OPTION_TYPES[name], value))
    return typed


def _from_text(kind: str, value: Any) -> Any:
    """Accept numbers and booleans written as text (Modelfile values are text)."""
    if not isinstance(value, str) or kind == "stop":
        return value
    text = value.strip()
    try:
        if kind == "bool":
            return {"true": True, "false": False}.get(text.lower(), value)
        return int(text) if kind == "int" and text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return value  # coerce_option reports the type error with the option's name


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise BadRequest("'messages' must be an array")
    messages = []
    for message in raw:
        if not isinstance(message, Mapping) or not isinstance(message.get("content", ""), str):
            raise BadRequest("each message must be an object with a role and string content")
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise BadRequest(f"invalid message role {role!r}: must be one of {', '.join(MESSAGE_ROLES)}")
        messages.append({"role": str(role), "content": str(message.get("content", ""))})
    return messages


def _licenses(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise BadRequest("'license' must be a string or an array of strings")


def _adapters(store: ModelStore, raw: Any) -> list[str]:
    """Adapters as uploaded blobs (``{"name": digest}``) or, from a legacy Modelfile, server paths."""
    if isinstance(raw, Mapping):
        digests = list(_file_map(store, raw, "adapters").values())
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        digests = [_adapter_blob(store, item) for item in raw]
    else:
        raise BadRequest("'adapters' must be an object of file names to digests")
    if len(digests) > 1:
        raise BadRequest("only one adapter is supported")
    for digest in digests:
        read_gguf(store.blob_path(digest))  # a LoRA must be a GGUF too
    return digests


def _adapter_blob(store: ModelStore, item: str) -> str:
    if is_digest(item):
        digest = normalize_digest(item)
        if not store.has_blob(digest):
            raise BlobNotFound(f'blob "{digest}" not found')
        return digest
    path = regular_file(expand_user(item), f"adapter file {item}")
    read_gguf(path)
    return store.import_file(path)


# -------------------------------------------------------------------------------------------- execution


def _execute(store: ModelStore, plan: _Plan) -> Iterator[Progress]:
    source = plan.source
    if source.base is None:
        yield {"status": "parsing GGUF"}
    if plan.quantize:
        yield {"status": f"quantizing {source.gguf.file_type_name} model to {plan.quantize.upper()}"}
        digest, info, new = _quantize(store, source, plan.quantize)
    else:
        digest, new = _add_weights(store, source)
        info = source.gguf
    parts = replace(plan.parts, model_digest=digest)
    yield from build_model_steps(store, plan.name, parts, gguf=info, new_digests=frozenset(new))
    yield {"status": "success"}


def _add_weights(store: ModelStore, source: _Source) -> tuple[str, set[str]]:
    """The model blob's digest, importing the server file if needed; plus the digests that are new."""
    if source.import_path is None:
        assert source.digest is not None
        return source.digest, set()
    digest = sha256_file(source.import_path)
    new = set() if store.has_blob(digest) else {digest}
    store.import_file(source.import_path, digest=digest)
    return digest, new


def _quantize(store: ModelStore, source: _Source, quantize: str) -> tuple[str, GGUFInfo, set[str]]:
    """Quantize with llama.cpp into a temp file, then add only the result as a blob.

    A server file is read in place: the unquantized weights never enter the store.
    """
    import llama_cpp

    assert source.import_path is not None or source.digest is not None
    source_path = source.import_path or store.blob_path(source.digest or "")
    output = temp_path(store.blobs_dir)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = QUANTIZE_TYPES[quantize]
        params.nthread = min(os.cpu_count() or 1, 8)
        status = llama_cpp.llama_model_quantize(str(source_path).encode(), str(output).encode(),
                                                ctypes.byref(params))
        if status != 0 or not output.is_file():
            raise EmberError(f"quantizing to {quantize.upper()} failed (llama.cpp returned {status})")
        info = read_gguf(output)
        digest = sha256_file(output)
        new = set() if store.has_blob(digest) else {digest}
        return store.import_file(output, digest=digest), info, new
    finally:
        remove_quietly(output)
