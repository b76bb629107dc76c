"""Settings: one object, built once at the edge (CLI or test) and passed in.

Every field reads an ``EMBER_*`` variable; where Ollama has the same knob its ``OLLAMA_*`` name is read
too (the ``EMBER_*`` name wins when both are set). docs/configuration.md documents each one.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ember.durations import parse_duration

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
ROLES = ("all", "engine", "web")
SIGNUP_MODES = ("open", "approval", "closed")


@dataclass(frozen=True)
class Setting:
    """Metadata for one field: the environment names it is read from and a one-line help text."""

    env: tuple[str, ...]
    help: str


def _meta(*env: str, help: str) -> dict[str, Any]:
    return {"setting": Setting(env=env, help=help)}


@dataclass(frozen=True)
class Settings:
    host: str = field(
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        metadata=_meta("EMBER_HOST", "OLLAMA_HOST", help="Address the engine binds to, and the CLI talks to."),
    )
    home: Path = field(
        default=Path("~/.ember"),
        metadata=_meta("EMBER_HOME", help="Ember's data directory: models/ (unless EMBER_MODELS is set), ember.db."),
    )
    models_dir: Path | None = field(
        default=None,
        metadata=_meta("EMBER_MODELS", "OLLAMA_MODELS",
                       help="Model store (Ollama's blobs/ + manifests/ layout); default EMBER_HOME/models."),
    )
    keep_alive: float = field(
        default=300.0,
        metadata=_meta(
            "EMBER_KEEP_ALIVE", "OLLAMA_KEEP_ALIVE",
            help="Default seconds a model stays loaded after its last request (duration or seconds; <0 = forever).",
        ),
    )
    max_loaded_models: int = field(
        default=3,
        metadata=_meta("EMBER_MAX_LOADED_MODELS", "OLLAMA_MAX_LOADED_MODELS",
                       help="Models loaded at once; the least recently used idle one is evicted."),
    )
    num_parallel: int = field(
        default=4,
        metadata=_meta("EMBER_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL",
                       help="Sequence slots per loaded model (requests decoded together)."),
    )
    model_parallel: tuple[tuple[str, int], ...] = field(
        default=(),
        metadata=_meta("EMBER_MODEL_PARALLEL",
                       help="Per-model slot counts overriding num_parallel, e.g. 'smollm2:135m=8,big:7b=2'."),
    )
    max_queue: int = field(
        default=512,
        metadata=_meta("EMBER_MAX_QUEUE", "OLLAMA_MAX_QUEUE",
                       help="Requests that may wait per model, loaded or not; beyond it: 503."),
    )
    context_length: int = field(
        default=4096,
        metadata=_meta("EMBER_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH",
                       help="Default num_ctx per slot (clamped to the model's trained context)."),
    )
    context_shift: bool = field(
        default=True,
        metadata=_meta("EMBER_CONTEXT_SHIFT",
                       help="When a generation fills num_ctx, drop the oldest tokens after num_keep and go on "
                            "(as Ollama does); false: stop with done_reason \"length\". A request turns it off "
                            "with \"shift\": false or \"truncate\": false."),
    )
    shared_prefix: bool = field(
        default=True,
        metadata=_meta("EMBER_SHARED_PREFIX",
                       help="A prompt that starts like one another slot of the model has cached (or is reading) "
                            "copies those KV cells instead of evaluating them again: one prefill for a shared "
                            "system prompt. Reported in prompt_cache_count."),
    )
    prompt_lookup: int = field(
        default=0,
        metadata=_meta("EMBER_PROMPT_LOOKUP",
                       help="Prompt-lookup decoding: up to this many tokens guessed per step from the prompt and "
                            "earlier output (the latest repeat of the last 2-3 tokens), checked in the same decode "
                            "by the request's own sampler, so but for rounding the output distribution is unchanged "
                            "at any temperature (llama.cpp computes a position's logits slightly differently when the "
                            "step feeds two or more tokens of its sequence than one, so a greedy near-tie can still "
                            "flip). 0 = off (the default: no benchmark has shown it faster, see bench/README.md)."),
    )
    kv_cache_type: str = field(
        default="f16",
        metadata=_meta("EMBER_KV_CACHE_TYPE", "OLLAMA_KV_CACHE_TYPE", help="KV cache type: f16, q8_0 or q4_0."),
    )
    flash_attention: bool | None = field(
        default=None,
        metadata=_meta("EMBER_FLASH_ATTENTION", "OLLAMA_FLASH_ATTENTION",
                       help="Flash attention on or off; unset or auto = off unless the KV cache is quantized "
                            "(which needs it). On CPUs it made long-context prompts several times slower."),
    )
    tmpdir: Path | None = field(
        default=None,
        metadata=_meta("EMBER_TMPDIR", "OLLAMA_TMPDIR",
                       help="Scratch directory for the server and its runners (default: the system's)."),
    )
    origins: tuple[str, ...] = field(
        default=(),
        metadata=_meta("EMBER_ORIGINS", "OLLAMA_ORIGINS", help="Extra allowed CORS origins, comma separated."),
    )
    noprune: bool = field(
        default=False,
        metadata=_meta("EMBER_NOPRUNE", "OLLAMA_NOPRUNE", help="Keep blobs no manifest references."),
    )
    load_timeout: float = field(
        default=300.0,
        metadata=_meta("EMBER_LOAD_TIMEOUT", "OLLAMA_LOAD_TIMEOUT", help="Give up loading a model after this long."),
    )
    request_timeout: float = field(
        default=600.0,
        metadata=_meta("EMBER_REQUEST_TIMEOUT", help="Deadline for one inference request, queue wait included."),
    )
    stall_timeout: float = field(
        default=120.0,
        metadata=_meta("EMBER_STALL_TIMEOUT",
                       help="A busy runner silent for this long is declared wedged, killed and replaced."),
    )
    max_predict: int = field(
        default=4096,
        metadata=_meta("EMBER_MAX_PREDICT",
                       help="Server-wide cap on generated tokens per request (num_predict); the web role lowers "
                            "larger asks."),
    )
    num_thread: int = field(
        default=0,
        metadata=_meta("EMBER_NUM_THREAD", help="llama.cpp threads per runner (0 = number of CPU cores)."),
    )
    num_gpu: int = field(
        default=0,
        metadata=_meta("EMBER_NUM_GPU", help="Layers to offload to a GPU (needs a GPU build of llama.cpp)."),
    )
    num_batch: int = field(
        default=512,
        metadata=_meta("EMBER_NUM_BATCH", help="Default prompt-processing batch size."),
    )
    body_timeout: float = field(
        default=60.0,
        metadata=_meta("EMBER_BODY_TIMEOUT",
                       help="A JSON body must arrive within this long, and an upload may pause no longer (408)."),
    )
    max_messages: int = field(
        default=4096,
        metadata=_meta("EMBER_MAX_MESSAGES", help="Most messages one chat request may carry (more: 400)."),
    )
    max_body_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=_meta("EMBER_MAX_BODY_BYTES", help="Largest accepted JSON request body (blob uploads excepted)."),
    )
    preload: tuple[str, ...] = field(
        default=(),
        metadata=_meta("EMBER_PRELOAD",
                       help="Models to pull (name) or create (name=/path/to/gguf-or-Modelfile) before serving."),
    )
    bundled_model: str = field(
        default="smollm2:135m",
        metadata=_meta("EMBER_BUNDLED_MODEL",
                       help="Name the bundled SmolLM2 GGUF is registered under on start ('' to skip)."),
    )
    role: str = field(
        default="all",
        metadata=_meta("EMBER_ROLE", help="What `ember serve` runs: all (engine + web), engine, or web."),
    )
    web_host: str = field(
        default="127.0.0.1:8080",
        metadata=_meta("EMBER_WEB_HOST", help="Address the web role (UI + gateway) binds to."),
    )
    engines: tuple[str, ...] = field(
        default=(),
        metadata=_meta("EMBER_ENGINES",
                       help="Engine base URLs the web role forwards to, comma separated (role all: the local engine)."),
    )
    engine_key: str = field(
        default="",
        metadata=_meta("EMBER_ENGINE_KEY", help="Shared secret the web role sends to engines, and engines require."),
    )
    allow_open_engine: bool = field(
        default=False,
        metadata=_meta("EMBER_ALLOW_OPEN_ENGINE",
                       help="Let the engine bind a non-loopback address without EMBER_ENGINE_KEY (logs a warning)."),
    )
    anonymous: bool = field(
        default=False,
        metadata=_meta("EMBER_ANONYMOUS", help="Serve the web role's /api and /v1 without a key (loopback only)."),
    )
    database_url: str = field(
        default="",
        metadata=_meta("EMBER_DATABASE_URL",
                       help="SQLAlchemy URL of the web role's database; default SQLite at EMBER_HOME/ember.db."),
    )
    redis_url: str = field(
        default="",
        metadata=_meta("EMBER_REDIS_URL", help="Redis for state several web replicas share (rate limits)."),
    )
    audit_bodies: bool = field(
        default=False,
        metadata=_meta("EMBER_AUDIT_BODIES", help="Keep prompt and response bodies in the audit log."),
    )
    audit_retention: float = field(
        default=30 * 86400.0,
        metadata=_meta("EMBER_AUDIT_RETENTION", help="Audit rows older than this are deleted (duration)."),
    )
    audit_body_retention: float = field(
        default=7 * 86400.0,
        metadata=_meta("EMBER_AUDIT_BODY_RETENTION",
                       help="Prompt and response bodies in the audit log are dropped after this long (duration)."),
    )
    metrics_public: bool = field(
        default=False,
        metadata=_meta("EMBER_METRICS_PUBLIC", help="Serve the web role's /metrics without the admin scope."),
    )
    signup: str = field(
        default="approval",
        metadata=_meta("EMBER_SIGNUP",
                       help="Web UI sign-up until an admin changes it: open, approval (new users pending) or closed."),
    )
    session_ttl: float = field(
        default=7 * 24 * 3600.0,
        metadata=_meta("EMBER_SESSION_TTL", help="How long a web UI login lasts without activity (duration)."),
    )
    cookie_secure: bool = field(
        default=False,
        metadata=_meta("EMBER_COOKIE_SECURE",
                       help="Mark the session cookie Secure even over plain HTTP (e.g. behind a TLS proxy)."),
    )
    trusted_proxies: str = field(
        default="127.0.0.1",
        metadata=_meta("EMBER_TRUSTED_PROXIES",
                       help="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed "
                            "(comma-separated addresses, or *): the client address that login limits count "
                            "and the audit log records. Add your ingress or load balancer here."),
    )
    upload_max_bytes: int = field(
        default=20 * 1024 * 1024,
        metadata=_meta("EMBER_UPLOAD_MAX_BYTES",
                       help="Largest document a web UI user may upload for retrieval (size such as 20M; more: 413)."),
    )
    redis_timeout: float = field(
        default=0.25,
        metadata=_meta("EMBER_REDIS_TIMEOUT",
                       help="Bound on each Redis call; past it (or on any Redis error) limits fall back to "
                            "per-replica memory for a few seconds (see docs/gateway.md)."),
    )
    redis_prefix: str = field(
        default="ember:",
        metadata=_meta("EMBER_REDIS_PREFIX",
                       help="Prefix of every Redis key Ember writes (several Embers, one Redis)."),
    )
    limits_admin: str = field(
        default="",
        metadata=_meta("EMBER_LIMITS_ADMIN",
                       help="Default limits of admins' keys: 'rpm=N,tpm=N,concurrency=N', any subset; '' = none."),
    )
    limits_user: str = field(
        default="rpm=600,concurrency=16",
        metadata=_meta("EMBER_LIMITS_USER",
                       help="Default limits of users' keys (a key's own --rpm/--tpm/--concurrency win)."),
    )
    limits_anonymous: str = field(
        default="rpm=600,concurrency=16",
        metadata=_meta("EMBER_LIMITS_ANONYMOUS", help="Default limits of anonymous callers (EMBER_ANONYMOUS)."),
    )
    max_num_ctx: int = field(
        default=0,
        metadata=_meta("EMBER_MAX_NUM_CTX",
                       help="Web role: largest num_ctx a request may ask for; larger ones are lowered (0 = none)."),
    )
    max_keep_alive: float = field(
        default=math.inf,
        metadata=_meta("EMBER_MAX_KEEP_ALIVE",
                       help="Web role: longest keep_alive a request may ask for; longer ones are lowered "
                            "(duration; <0 = no maximum)."),
    )
    doctor_memory_limit: int = field(
        default=0,
        metadata=_meta("EMBER_DOCTOR_MEMORY_LIMIT",
                       help="Memory `ember doctor` assumes is available, in bytes or with K/M/G/T (0 = measure it)."),
    )
    log_level: str = field(
        default="info",
        metadata=_meta("EMBER_LOG_LEVEL", help="debug, info, warning or error (OLLAMA_DEBUG=1 means debug)."),
    )

    @property
    def bind_host(self) -> str:
        return split_host(self.host)[0]

    @property
    def bind_port(self) -> int:
        return split_host(self.host)[1]

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def models_path(self) -> Path:
        return (self.models_dir or self.home / "models").expanduser()

    @property
    def database(self) -> str:
        """The database URL to use: EMBER_DATABASE_URL, else SQLite in EMBER_HOME."""
        return self.database_url or f"sqlite:///{self.home_path / 'ember.db'}"

    @property
    def engine_urls(self) -> tuple[str, ...]:
        """Engines the web role forwards to: EMBER_ENGINES, else the local engine."""
        return self.engines or (self.base_url,)

    @property
    def base_url(self) -> str:
        host, port = split_host(self.host)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); keyword overrides win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            setting: Setting = f.metadata["setting"]
            raw = _first_set(env, setting.env, keep_empty=f.name in _EMPTY_IS_A_VALUE)
            if raw is not None:
                values[f.name] = _convert(f.name, raw)
        if "log_level" not in values and _truthy(env.get("OLLAMA_DEBUG", "")):
            values["log_level"] = "debug"
        values.update(overrides)
        return cls(**values)


def is_loopback(host: str) -> bool:
    """A bind address that only this machine can reach: ``localhost`` or a loopback IP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int]:
    """Parse OLLAMA_HOST forms: ``host``, ``:port``, ``host:port``, ``http://host[:port]``, ``[::1]:port``."""
    value = value.strip().strip("\"'")
    default_port = DEFAULT_PORT
    for scheme, port in (("http://", 80), ("https://", 443)):
        if value.startswith(scheme):
            value, default_port = value[len(scheme):], port
    value = value.split("/", 1)[0]
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.lstrip(":")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    port = int(port_text) if port_text else default_port
    return host or DEFAULT_HOST, port


# Settings where setting the variable to nothing means "none" rather than "use the default".
_EMPTY_IS_A_VALUE = {"bundled_model", "preload", "origins", "limits_admin", "limits_user", "limits_anonymous"}


def _first_set(env: Mapping[str, str], names: tuple[str, ...], *, keep_empty: bool = False) -> str | None:
    for name in names:
        raw = env.get(name)
        if raw is not None and (keep_empty or raw.strip() != ""):
            return raw.strip().strip("\"'")
    return None


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


_INT_FIELDS = {"max_loaded_models", "num_parallel", "max_queue", "context_length", "max_predict", "num_thread",
               "prompt_lookup", "num_gpu", "num_batch", "max_body_bytes", "max_messages", "max_num_ctx"}
_DURATION_FIELDS = {"keep_alive", "load_timeout", "request_timeout", "stall_timeout", "audit_retention",
                    "body_timeout", "audit_body_retention", "redis_timeout", "max_keep_alive", "session_ttl"}
_LIMIT_FIELDS = {"limits_admin", "limits_user", "limits_anonymous"}
_BOOL_FIELDS = {"noprune", "context_shift", "shared_prefix", "allow_open_engine", "anonymous", "audit_bodies",
                "metrics_public", "cookie_secure"}
_SIZE_FIELDS = {"doctor_memory_limit", "upload_max_bytes"}


def _convert(name: str, raw: str) -> Any:
    if name in _INT_FIELDS:
        return int(raw)
    if name in _DURATION_FIELDS:
        return parse_duration(raw)
    if name in _SIZE_FIELDS:
        return parse_size(raw)
    if name in ("models_dir", "tmpdir", "home"):
        return Path(raw)
    if name == "model_parallel":
        return _parse_model_parallel(raw)
    if name in ("origins", "preload", "engines"):
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    if name in _BOOL_FIELDS:
        return _truthy(raw)
    if name == "flash_attention":
        return None if raw.lower() == "auto" else _truthy(raw)
    if name in _LIMIT_FIELDS:
        parse_limits(raw, "EMBER_" + name.upper())  # refuse a bad value at start, not on the first request
        return raw
    if name == "role" and raw not in ROLES:
        raise ValueError(f"EMBER_ROLE: expected one of {', '.join(ROLES)}, got {raw!r}")
    if name == "signup" and raw not in SIGNUP_MODES:
        raise ValueError(f"EMBER_SIGNUP: expected one of {', '.join(SIGNUP_MODES)}, got {raw!r}")
    return raw


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(raw: str) -> int:
    """Bytes from ``1073741824``, ``512M``, ``2G``, ``1.5GiB`` or ``2GB`` (units are powers of 1024)."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _SIZE_UNITS else (text, "")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"expected a size such as 512M or 2G, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"expected a size such as 512M or 2G, got {raw!r}")
    return int(value * _SIZE_UNITS[unit])


def _parse_model_parallel(raw: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, count = item.strip().rpartition("=")
        if not sep or not name or not count.strip().isdigit():
            raise ValueError(f"EMBER_MODEL_PARALLEL: expected name=N, got {item.strip()!r}")
        pairs.append((name.strip(), int(count)))
    return tuple(pairs)


LIMIT_NAMES = ("rpm", "tpm", "concurrency")


def parse_limits(text: str, setting: str = "limits") -> dict[str, int]:
    """``'rpm=60,tpm=100000,concurrency=4'`` (any subset, any order) as a dict; '' or 'none' = no limits."""
    limits: dict[str, int] = {}
    if text.strip().lower() in ("", "none"):
        return limits
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in LIMIT_NAMES or not value.isdigit() or int(value) <= 0:
            raise ValueError(f"{setting}: expected name=N with name one of {', '.join(LIMIT_NAMES)} and N a "
                             f"positive integer, got {item.strip()!r}")
        limits[name] = int(value)
    return limits


def describe() -> list[tuple[str, str, str]]:
    """(environment names, default, help) for every setting: used by `ember serve --help` and the docs test."""
    rows = []
    for f in fields(Settings):
        setting: Setting = f.metadata["setting"]
        rows.append((", ".join(setting.env), str(f.default), setting.help))
    return rows
