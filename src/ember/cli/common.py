"""Helpers every command module shares: the HTTP client from settings and one-line error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ember.client import Client, ClientError
from ember.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def client() -> Client:
    return Client.from_settings(Settings.from_env())


def friendly_errors(fn: F) -> F:
    """Print one clear line and exit 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
