"""What `hub load` shows while a load works: pages, rows and files per entity, so a slow source is seen.

On a terminal a status line is redrawn in place; in a log (not a terminal) a line is printed at most
every ``every`` seconds, so a load that takes minutes still says it is alive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def load_progress(console: Console, label: str, every: float = 10.0) -> Iterator:
    started = time.monotonic()
    last_line = [started]

    def text(rows: int, pages: int, files: int) -> str:
        unit = f"{files:,} file(s)" if files else f"{pages:,} page(s)"
        return f"{label}: {unit}, {rows:,} rows read, {time.monotonic() - started:.0f} s"

    if console.is_terminal:
        with console.status(f"{label}: connecting …") as status:
            yield lambda rows, pages, files: status.update(text(rows, pages, files))
        return

    def log(rows: int, pages: int, files: int) -> None:
        now = time.monotonic()
        if now - last_line[0] >= every:
            last_line[0] = now
            console.print(f"… {text(rows, pages, files)}", highlight=False)

    yield log
