"""Hashing for passwords (argon2id), API keys and one-time tokens (sha256 of a high-entropy random secret).

A random 256-bit secret needs no slow hash: nobody can guess it, so sha256 is enough, and lookup by hash
stays a fast indexed query. Passwords are chosen by people and get argon2id.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id with argon2-cffi's RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so that a missing name takes as long as a wrong password.
    Made on first use: hashing costs tens of milliseconds that importing should not."""
    return _HASHER.hash("ember: no such user")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def random_secret(prefix: str = "") -> str:
    """``prefix`` + 43 URL-safe characters (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    # UTF-8, not ASCII: a client-sent value (a CSRF header or form field) may hold any character, and must
    # compare unequal rather than raise.
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
