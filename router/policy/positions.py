"""Where a path of a policy file is: PyYAML node marks by path (keys and list indices).

Used by :mod:`router.policy.check` to give every problem a line and a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["YamlPath", "Where", "Positions", "line_col", "dotted"]

YamlPath = tuple[str | int, ...]
"""Mapping keys and list indices from the top of the file."""


@dataclass(frozen=True, slots=True)
class Where:
    """The marks of one node: its key's (None for list items and the root) and its value's."""

    key: yaml.Mark | None
    value: yaml.Mark


class Positions:
    """Map from a path (mapping keys and list indices) to its YAML marks."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._index: dict[YamlPath, Where] = {}
        if root is not None:
            self._walk(root, (), None)

    def _walk(self, node: yaml.Node, path: YamlPath, key_mark: yaml.Mark | None) -> None:
        self._index[path] = Where(key_mark, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    self._walk(v, path + (k.value,), k.start_mark)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, path + (i,), None)

    def resolve(self, loc: tuple[Any, ...]) -> tuple[YamlPath, bool]:
        """The longest known path along ``loc`` and whether all of ``loc`` was found.
        Elements pydantic adds for unions (``function-after[...]``, type names) are skipped."""
        path: YamlPath = ()
        for elem in loc:
            candidate = path + (elem if isinstance(elem, int) else str(elem),)
            if candidate in self._index:
                path = candidate
        return path, path == tuple(e if isinstance(e, int) else str(e) for e in loc)

    def mark(self, path: YamlPath, *, key: bool = False) -> yaml.Mark | None:
        """The mark of ``path``'s value (its key's when ``key`` and it has one), or None."""
        where = self._index.get(path)
        if where is None:
            return None
        return (where.key or where.value) if key else where.value


def line_col(mark: yaml.Mark | None) -> tuple[int, int]:
    """1-based (line, column) of ``mark``; (1, 1) when unknown."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def dotted(path: YamlPath | tuple[Any, ...]) -> str:
    """``a.b[0].c`` for a path."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
