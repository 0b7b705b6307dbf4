"""What ``--dashboard`` and ``--rerun`` add to a run, in one object the commands wrap their run in.

Example:
    >>> with LiveViews(dashboard="127.0.0.1:0", rerun=None) as views:  # doctest: +SKIP
    ...     summary = asyncio.run(run_narrator(cfg, sinks=views.sinks("camera")))

The server starts (and its URL is printed) before the run, so a page can be opened while a model loads;
it stops after the run, once clients had ``linger_s`` to take the last update. The Rerun file is closed
(everything queued logged, the file flushed) on the way out, also when the run failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from agentkit.apps.dashboard.server import DashboardServer, parse_address
from agentkit.apps.dashboard.state import LiveHub
from agentkit.sinks import Sink

if TYPE_CHECKING:
    from agentkit.apps.dashboard.rerun_log import RerunLog


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class LiveViews:
    """A live dashboard (``dashboard`` is the ``--dashboard`` value; ``None``: none) and/or a Rerun file.

    Raises (on construction):
        ConfigError: a bad address, a non-loopback one without ``public``, or a bad ``.rrd`` path.
    """

    def __init__(
        self,
        dashboard: str | None = None,
        *,
        public: bool = False,
        rerun: str | Path | None = None,
        title: str = "",
        max_fps: float = 15.0,
        linger_s: float = 2.0,
        announce: Callable[[str], None] = _announce,
    ) -> None:
        self.hub: LiveHub | None = None
        self.server: DashboardServer | None = None
        if dashboard is not None:
            self.hub = LiveHub(title=title, max_fps=max_fps)
            self.server = DashboardServer(self.hub, parse_address(dashboard), public=public, linger_s=linger_s)
        self.rerun_path = Path(rerun) if rerun is not None else None
        self.rerun: RerunLog | None = None
        self.announce = announce
        self.url: str | None = None

    @property
    def active(self) -> bool:
        return self.server is not None or self.rerun_path is not None

    def __enter__(self) -> LiveViews:
        if self.rerun_path is not None:
            from agentkit.apps.dashboard.rerun_log import RerunLog

            self.rerun = RerunLog(self.rerun_path)
        if self.server is not None:
            try:
                self.url = self.server.start()
            except BaseException:
                if self.rerun is not None:
                    self.rerun.close()
                raise
            self.announce(f"dashboard: {self.url}")
        return self

    def sinks(self, stream: str, *, hold_response: bool = False, point_labels: Sequence[str] = ()) -> list[Sink]:
        """The sinks for one stream of the run (none when neither option was given)."""
        out: list[Sink] = []
        if self.hub is not None:
            out.append(self.hub.sink(stream, hold_response=hold_response, point_labels=tuple(point_labels)))
        if self.rerun is not None:
            out.append(self.rerun.sink(stream))
        return out

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            if self.rerun is not None:
                self.rerun.close()
                if self.rerun.dropped:
                    self.announce(f"rerun: {self.rerun.dropped} items not logged (the writer fell behind)")
                self.announce(f"rerun: {self.rerun_path}")
