"""A run as it happens: a live web dashboard (``--dashboard``), a recording replayed the same way
(``agentkit dashboard DIR``), and a Rerun log (``--rerun FILE.rrd``).

``metrics.json`` arrives when a run ends; a person watching a camera, a robot or a browser agent wants to
see the frames, the Silence/Standby/Response timeline, the Responses, the latency and the tool calls now.

* :mod:`.state`: the loop sink (:class:`~.state.DashboardSink`, reference copies only) and what the
  server derives from it (records, one-second plot points, annotated JPEGs at a capped rate).
* :mod:`.server`: addresses, the WebSocket protocol, and the thread the app is served from;
  :mod:`.runtime`: what the server's loop does for a live run (poll, encode, wake clients);
  :mod:`.app`: the FastAPI routes and the host/origin guard (the only module importing FastAPI).
* :mod:`.replay`: a recording folder served read-only, frames decoded on demand.
* :mod:`.rerun_log`: the ``.rrd`` writer.
* :mod:`.live`: :class:`~.live.LiveViews`, what the commands wrap a run in.
* ``static/``: the page (plain HTML, CSS and JavaScript with canvas plots; nothing fetched from elsewhere).

FastAPI, uvicorn and rerun-sdk come with the ``dashboard`` extra and are imported only when used.
"""

from agentkit.apps.dashboard.live import LiveViews
from agentkit.apps.dashboard.server import Address, DashboardServer, parse_address
from agentkit.apps.dashboard.state import DashboardSink, LiveHub, StreamState

__all__ = ["Address", "DashboardServer", "DashboardSink", "LiveHub", "LiveViews", "StreamState", "parse_address"]
