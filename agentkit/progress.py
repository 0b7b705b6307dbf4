"""A progress bar as a sink: frames processed against the stream's length, when it is known."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agentkit.sinks import Sink
from agentkit.types import Decision, DecisionKind, Frame


class ProgressSink(Sink):
    """Shows stream seconds done of ``total_s`` (or a counter for live streams), plus the Response count."""

    def __init__(
        self, total_s: float | None, *, description: str = "narrating", console: Console | None = None
    ) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total_s is None else TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TextColumn("{task.fields[responses]} responses"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total_s, responses=0)
        self.total_s = total_s
        self.responses = 0
        self.progress.start()

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if decision.kind is DecisionKind.RESPONSE:
            self.responses += 1
        if self.total_s is None:
            self.progress.update(self.task, advance=1, responses=self.responses)
        else:
            self.progress.update(self.task, completed=min(decision.pts, self.total_s), responses=self.responses)

    def close(self) -> None:
        if self.total_s is not None:
            self.progress.update(self.task, completed=self.total_s)
        self.progress.stop()
