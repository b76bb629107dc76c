from __future__ import annotations

import math
from pathlib import Path

import pytest

from ember.config import Settings, split_host


def test_ollama_names_are_read_and_ember_names_win() -> None:
    env = {"OLLAMA_HOST": "0.0.0.0:1234", "OLLAMA_NUM_PARALLEL": "2", "EMBER_NUM_PARALLEL": "6",
           "OLLAMA_KEEP_ALIVE": "-1", "OLLAMA_MODELS": "/srv/models", "OLLAMA_ORIGINS": "a://x, b://y"}
    s = Settings.from_env(env)
    assert (s.bind_host, s.bind_port) == ("0.0.0.0", 1234)
    assert s.num_parallel == 6
    assert s.keep_alive == math.inf
    assert s.models_dir == Path("/srv/models")
    assert s.origins == ("a://x", "b://y")
    assert s.base_url == "http://127.0.0.1:1234"


def test_defaults_bind_loopback() -> None:
    s = Settings.from_env({})
    assert s.host == "127.0.0.1:11434" and s.max_predict > 0 and s.request_timeout > 0


def test_ollama_debug_means_debug_logging() -> None:
    assert Settings.from_env({"OLLAMA_DEBUG": "1"}).log_level == "debug"


def test_host_forms() -> None:
    assert split_host(":8080") == ("127.0.0.1", 8080)
    assert split_host("http://example.com") == ("example.com", 80)
    assert split_host("https://example.com") == ("example.com", 443)
    assert split_host("[::1]:9000") == ("::1", 9000)
    assert split_host("10.0.0.1") == ("10.0.0.1", 11434)


def test_per_model_parallel_override() -> None:
    s = Settings.from_env({"EMBER_MODEL_PARALLEL": "smollm2:135m=8, user/big:7b=2", "OLLAMA_NUM_PARALLEL": "3"})
    assert s.model_parallel == (("smollm2:135m", 8), ("user/big:7b", 2))
    assert s.num_parallel == 3


def test_empty_bundled_model_turns_it_off() -> None:
    assert Settings.from_env({"EMBER_BUNDLED_MODEL": ""}).bundled_model == ""
    assert Settings.from_env({}).bundled_model == "smollm2:135m"
    assert Settings.from_env({"EMBER_CONTEXT_LENGTH": ""}).context_length == 4096


def test_audit_retention_takes_days() -> None:
    assert Settings.from_env({"EMBER_AUDIT_RETENTION": "7d"}).audit_retention == 7 * 86400.0
    assert Settings.from_env({}).audit_retention == 30 * 86400.0


def test_doctor_memory_limit_takes_sizes() -> None:
    assert Settings.from_env({"EMBER_DOCTOR_MEMORY_LIMIT": "512M"}).doctor_memory_limit == 512 << 20
    assert Settings.from_env({"EMBER_DOCTOR_MEMORY_LIMIT": "1.5GiB"}).doctor_memory_limit == 3 << 29
    assert Settings.from_env({"EMBER_DOCTOR_MEMORY_LIMIT": "4096"}).doctor_memory_limit == 4096
    with pytest.raises(ValueError, match="512M"):
        Settings.from_env({"EMBER_DOCTOR_MEMORY_LIMIT": "lots"})
