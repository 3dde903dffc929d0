"""The line of a key in a track file, for messages that point at it.

tomllib reports the line of a syntax error but keeps no positions for parsed values, so a key
that parsed fine and means something wrong (an unknown recipe, a parameter out of bounds) is
found again in the text: the n-th `[[steps]]` table, then the key inside it, then a name inside
that key's inline table or sub-table. Good enough for hand-written files; when a key cannot be
found the nearest enclosing table's line is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_STEPS = re.compile(r"^\s*\[\[\s*steps\s*\]\]")
_TABLE = re.compile(r"^\s*\[")


def _key(name: str) -> re.Pattern[str]:
    """`name = …` at the start of a line, bare or quoted."""
    quoted = re.escape(name)
    return re.compile(rf"^\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")


def _inner(name: str) -> re.Pattern[str]:
    """`name = …` anywhere on a line: inside an inline table `{ a = 1, name = 2 }` too."""
    quoted = re.escape(name)
    return re.compile(rf"(?:^|[\s{{,])(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")


def line_of(text: str, where: Sequence[str | int]) -> int | None:
    """1-based line of the key at path `where` ("steps", 2, "params", "authors"); None if not found."""
    lines = text.splitlines()
    if not where:
        return None
    if where[0] != "steps" or len(where) < 2:
        return _first(lines, 0, _top_end(lines), _key(str(where[0])))
    starts = [i for i, line in enumerate(lines) if _STEPS.match(line)]
    index = where[1]
    if not isinstance(index, int) or index >= len(starts):
        return _first(lines, 0, len(lines), _key("steps")) or (starts[0] + 1 if starts else None)
    begin = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else len(lines)
    found = begin
    for name in where[2:]:
        hit = _first(lines, found, end, _key(str(name))) or _sub_table(lines, found, end, str(name))
        if hit is None:
            hit = _first(lines, found, end, _inner(str(name)))
        if hit is None:
            break
        found = hit - 1
    return found + 1


def _top_end(lines: list[str]) -> int:
    """Where the top-level keys end: the first table header."""
    return next((i for i, line in enumerate(lines) if _TABLE.match(line)), len(lines))


def _first(lines: list[str], start: int, end: int, pattern: re.Pattern[str]) -> int | None:
    return next((i + 1 for i in range(start, end) if pattern.search(lines[i])), None)


def _sub_table(lines: list[str], start: int, end: int, name: str) -> int | None:
    """`[steps.name]` (or `[steps.name.more]`) inside the step's block."""
    header = re.compile(rf"^\s*\[\s*steps\s*\.\s*{re.escape(name)}\b")
    return _first(lines, start, end, header)
