"""``--source mqtt://host:port/name`` (or ``mqtts://``): frames of a remote robot (or camera) node over MQTT.

Why: an agent in one process must see a robot that lives in another. This source is lossy and
latest-wins (a bounded slot of one frame behind the :class:`~agentkit.transport.mqtt.wire.Freshness` filter),
survives broker restarts (the link reconnects with back-off and the stream simply resumes), and exposes
its :class:`~agentkit.transport.mqtt.link.RobotLink` so the same connection can carry the agent's tool calls
(:class:`agentkit.transport.mqtt.toolbox.MqttToolBox`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agentkit.errors import SourceError
from agentkit.sources import Source
from agentkit.transport.mqtt.auth import MqttAuth
from agentkit.transport.mqtt.link import RobotLink
from agentkit.transport.mqtt.wire import parse_spec
from agentkit.types import Frame


class MqttSource(Source):
    """Frames published by a robot node on ``agentkit/<name>/frame``.

    Args:
        spec: ``mqtt://host[:port]/name``, or ``mqtts://host[:port]/name`` for TLS (port 8883).
        privileged: also subscribe to the node's ``state`` topic and attach it as ``Frame.privileged``
            (for the expert and for evaluation; a pixels policy must not ask for it).
        max_age_s: frames older than this (node clock) are dropped as stale.
        connect_timeout_s: how long :meth:`open` waits for the broker.
        max_frames: end the stream after this many frames (``None``: live, forever).
        auth: login and TLS files (``None``: from the ``AGENTKIT_MQTT_*`` environment, else anonymous).
    """

    lossless = False

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> MqttSource:
        return cls(spec, **options)

    def __init__(
        self,
        spec: str,
        *,
        privileged: bool = False,
        max_age_s: float | None = 2.0,
        connect_timeout_s: float = 10.0,
        max_frames: int | None = None,
        auth: MqttAuth | None = None,
        **_: Any,
    ) -> None:
        try:
            self.spec = parse_spec(spec)
        except ValueError as e:
            raise SourceError(str(e)) from None
        self.name = self.spec.url
        self.link = RobotLink(self.spec, privileged=privileged, max_age_s=max_age_s, auth=auth)
        self.connect_timeout_s = connect_timeout_s
        self.max_frames = max_frames

    async def open(self) -> None:
        await self.link.start(self.connect_timeout_s)

    async def frames(self) -> AsyncIterator[Frame]:
        n = 0
        while self.max_frames is None or n < self.max_frames:
            yield await self.link.next_frame()
            n += 1

    async def close(self) -> None:
        await self.link.close()
