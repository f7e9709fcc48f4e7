"""Tables of the `llm-engine` CLI that fit the terminal without cutting what matters.

rich shrinks every column of a too-wide table and cuts cells to "gemma…": in an 80-column
terminal nobody could read which model to pull. Here the columns a user needs whole (a model's
name, its pull reference) are never wrapped nor cut; the others are dropped, least useful
first, until the table fits, and whatever still does not fit wraps rather than truncates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class Column:
    header: str
    keep: bool = False        # never dropped, never wrapped or cut
    priority: int = 0         # optional columns: the lowest goes first
    cells: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


def _table_width(columns: list[Column]) -> int:
    # rich's default box: one space of padding either side of each cell, one rule between
    # columns and one at each edge.
    return sum(c.width + 3 for c in columns) + 1


def fit_table(columns: list[Column], width: int, title: str | None = None) -> Table:
    shown = list(columns)
    for col in sorted((c for c in columns if not c.keep), key=lambda c: c.priority):
        if _table_width(shown) <= width:
            break
        shown.remove(col)
    table = Table(title=title)
    for col in shown:
        table.add_column(col.header, no_wrap=col.keep, overflow="fold",
                         min_width=col.width if col.keep else None)
    for row in zip(*(c.cells for c in shown), strict=True):
        table.add_row(*row)
    return table
