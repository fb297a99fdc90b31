"""Text a user sends: one rule for every string the API stores or searches with.

Control characters (C0 with NUL, DEL, C1) and lone UTF-16 surrogates are refused with the
field named. PostgreSQL rejects NUL in text and JSON columns (a 500 otherwise), a surrogate
cannot be encoded to UTF-8 for either database, and no name or path needs a control character.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _describe(text: str) -> str | None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "the NUL character" if char == "\x00" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}; names, paths and searches must be printable text"


def printable(text: str) -> str:
    """The check behind `Text`: refuses control characters and lone surrogates."""
    reason = _describe(text)
    if reason:
        raise PydanticCustomError("control_character", reason)
    return text


def printable_json(value: Any) -> Any:
    """The same check for every string (keys too) inside a JSON value of free shape (a sweep's base and grid)."""

    def walk(v: Any, path: str) -> None:
        if isinstance(v, str):
            reason = _describe(v)
            if reason:
                raise PydanticCustomError("control_character", "{path}{reason}", {"path": f"{path}: " if path else "", "reason": reason})
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(k, path)
                walk(item, f"{path}.{k}" if path else str(k))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{path}[{i}]")

    walk(value, "")
    return value


Text = Annotated[str, AfterValidator(printable)]
JsonText = AfterValidator(printable_json)
