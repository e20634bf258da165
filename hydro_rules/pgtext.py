"""Text and JSON that PostgreSQL can store, whatever a node or a client sent.

PostgreSQL refuses the NUL character in `text` and `jsonb`, and a lone UTF-16
surrogate (JSON's "\\ud800", which Python's json decodes) cannot be encoded to
UTF-8 at all. Both doors use these checks before anything reaches the store.
"""

from __future__ import annotations

import math

REPLACEMENT = "\ufffd"


class TooDeep(ValueError):
    """A JSON value nested deeper than allowed."""


def bad_text(s: str) -> str | None:
    """Why PostgreSQL cannot store `s`, or None when it can."""
    if "\x00" in s:
        return "holds a NUL character"
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone UTF-16 surrogate"
    return None


def clean_text(s: str) -> str:
    """`s` with NUL and lone surrogates replaced by U+FFFD."""
    if bad_text(s) is None:
        return s
    return "".join(REPLACEMENT if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in s)


def storable(value, max_depth: int = 32, _depth: int = 0):
    """A copy of a JSON value that jsonb takes: bad text replaced (keys too), NaN and infinities as null.

    Raises TooDeep when the value nests deeper than `max_depth`.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list | tuple):
        if _depth >= max_depth:
            raise TooDeep(f"nested deeper than {max_depth} levels")
        if isinstance(value, dict):
            return {clean_text(str(k)): storable(v, max_depth, _depth + 1) for k, v in value.items()}
        return [storable(v, max_depth, _depth + 1) for v in value]
    return value


def find_bad_text(value, path: tuple = ()) -> tuple[tuple, str] | None:
    """The path and problem of the first string (or key) in a JSON value that PostgreSQL cannot store."""
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, str):
            why = bad_text(v)
            if why:
                return p, why
        elif isinstance(v, dict):
            for k, item in v.items():
                why = bad_text(k) if isinstance(k, str) else None
                if why:
                    return (*p, k), f"key {why}"
                stack.append((item, (*p, k)))
        elif isinstance(v, list | tuple):
            stack.extend((item, (*p, i)) for i, item in enumerate(v))
    return None


def depth(value) -> int:
    """How deep a JSON value nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list | tuple):
            continue
        deepest = max(deepest, d + 1)
        stack.extend((item, d + 1) for item in v)
    return deepest
