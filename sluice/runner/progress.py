"""Live progress of a run: each step, its state and elapsed time.

On a terminal a rich table redraws in place; elsewhere (CI, pipes) one line
is printed per state change, so logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table

STATE_STYLE = {
    "pending": "dim", "running": "bold cyan", "succeeded": "green", "cached": "blue",
    "failed": "bold red", "skipped": "yellow", "retrying": "magenta",
}


@dataclass
class StepRow:
    name: str
    state: str = "pending"
    started: float | None = None
    ended: float | None = None
    detail: str = ""

    def elapsed(self) -> str:
        if self.started is None:
            return ""
        return f"{(self.ended or time.time()) - self.started:6.1f}s"


@dataclass
class Progress:
    """Tracks step states and renders them.

    Example::

        with Progress(["ExampleGen", "Trainer"], title="run 1a2b") as p:
            p.update("ExampleGen", "running")
            p.update("ExampleGen", "succeeded", "2 splits, 1,000,000 rows")
    """

    steps: list[str]
    title: str = ""
    console: Console = field(default_factory=lambda: Console(file=sys.__stdout__))
    enabled: bool = True

    def __post_init__(self) -> None:
        self.rows = {name: StepRow(name) for name in self.steps}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4,
                              redirect_stdout=False, redirect_stderr=False, get_renderable=self._render)
            self._live.__enter__()
        elif self.enabled and self.title:
            self.console.print(self.title, highlight=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, name: str, state: str, detail: str = "") -> None:
        """Set a step's state (pending, running, succeeded, cached, failed, skipped, retrying)."""
        with self._lock:
            row = self.rows[name]
            now = time.time()
            if state in ("running", "cached") and row.started is None:
                row.started = now
            if state in ("succeeded", "cached", "failed", "skipped"):
                row.ended = now
            row.state, row.detail = state, detail or row.detail
        if self._live is None and self.enabled:
            style = STATE_STYLE.get(state, "")
            self.console.print(f"  {name:<22} [{style}]{state:<10}[/] {row.elapsed():>8}  {detail}",
                               highlight=False)

    def _render(self) -> Table:
        table = Table(title=self.title or None, title_justify="left", expand=False)
        for col in ("step", "state", "elapsed", "detail"):
            table.add_column(col, no_wrap=col != "detail")
        for row in self.rows.values():
            style = STATE_STYLE.get(row.state, "")
            table.add_row(row.name, f"[{style}]{row.state}[/]", row.elapsed(), row.detail)
        return table
