"""Positions in source files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns count from 1, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def char(cls, path: str, line: int, column: int) -> Span:
        """The span of the one character at `line`, `column`."""
        return cls(path, line, column, line, column + 1)

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.path, self.line, self.column, other.end_line, other.end_column)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


def position(text: str, offset: int) -> tuple[int, int]:
    """(line, column) of `offset` in decoded rule text (lines end with LF), counted from 1."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
