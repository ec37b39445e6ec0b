"""What of a caller's input or an internal failure may leave the service in an HTTP answer.

Error answers are short: input is echoed as at most a short, escaped prefix (:func:`echo`), messages
are capped and control characters escaped (:func:`safe_message`), and a failure's reason is its kind
and first line without SQL, file paths, URIs or hex ids (:func:`short_reason`). The full text goes to
the service log, never to the caller.
"""

from __future__ import annotations

import re
import reprlib

__all__ = ["ECHO_CHARS", "MESSAGE_CHARS", "echo", "safe_message", "short_reason"]

ECHO_CHARS = 40
"""Characters of a rejected value an error message may quote (then ``...`` and the value's length)."""
MESSAGE_CHARS = 300
"""Characters of one error message; past that it is cut and ends with ``...``."""



def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, 3, 3, 3, 3
    r.maxstring = r.maxother = r.maxlong = ECHO_CHARS
    return r


_REPR = _short_repr()
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_SQL = re.compile(r"\s*\[(SQL|parameters):.*", re.DOTALL)
_BACKGROUND = re.compile(r"\s*\(Background on this error at:[^)]*\)")
_URI = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"),;]*", re.IGNORECASE)
_PATH = re.compile(r"(?<![\w.])(?:~|\.{1,2})?/[^\s'\"),;]+")
_HEX_ID = re.compile(r"\b[0-9a-f]{16,}\b", re.IGNORECASE)


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A short, escaped rendering of a rejected input value for an error message.

    Text longer than ``limit`` becomes its first ``limit`` characters, ``...`` and its length;
    containers show a few items at two levels at most (:mod:`reprlib`); control characters are
    escaped. Never longer than about ``2 * limit`` characters, whatever the value's size or depth.

    >>> echo("x" * 1000)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (1000 characters)"
    """
    if isinstance(value, str):
        shown = repr(value[:limit]) + (f"... ({len(value)} characters)" if len(value) > limit else "")
        return _escape(shown)
    try:
        shown = _REPR.repr(value)
    except Exception:  # a value whose repr fails: its type says enough
        shown = f"<{type(value).__name__}>"
    shown = _escape(shown)
    return shown if len(shown) <= 2 * limit else shown[: 2 * limit] + "..."


def safe_message(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` with control characters escaped, cut to ``limit`` characters (then ``...``); only the
    first ``limit`` characters are read, so a huge text costs no more than a short one."""
    text = str(text)
    escaped = _escape(text[:limit])
    return escaped if len(text) <= limit and len(escaped) <= limit else escaped[:limit] + "..."


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """An exception as it may be shown to a caller: its type and the first line of its message, without
    SQL statements and parameters, URIs, file paths or hex ids, at most ``limit`` characters.

    SQLAlchemy errors are reported by the database driver's message (``DatabaseError: file is not a
    database``), not SQLAlchemy's text with the statement.
    """
    inner = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the driver's exception
    source = inner if isinstance(inner, BaseException) else exc
    text = str(source)
    text = _BACKGROUND.sub("", _SQL.sub("", text))
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = _HEX_ID.sub("<id>", _PATH.sub("<path>", _URI.sub("<uri>", first)))
    kind = type(exc).__name__
    return safe_message(f"{kind}: {first}" if first else kind, limit)
