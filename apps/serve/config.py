"""``agentkit serve``'s settings: where it listens, who may call it, what it will accept, how it batches.

One validated model (:class:`ServeConfig`), so the CLI, tests and a YAML file configure the server the same
way and a bad value fails before a model is loaded, naming the field and the value.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServeConfig(BaseModel):
    """Settings of the streaming-engine server.

    Attributes:
        model: checkpoint folder (or hub id where a hub is reachable).
        arch / size: instead of ``model``, build a random-weight model of this architecture in memory.
        served_model_name: the id ``/v1/models`` lists (default: the checkpoint folder's name, or
            ``random-ARCH-SIZE``); requests may name any model, the reply names this one.
        host / port: where to listen. Anything but a loopback address needs ``api_key``.
        api_key: the bearer token every endpoint requires (``None``: no check, loopback only).
        max_streams: most streams with a cache at once (a new one beyond: 429 ``too_many_streams``).
        max_cache_mb: budget of all streams' KV caches together; above it, idle streams are evicted to
            their sink (prompt, instruction, pinned questions), least recently used first.
        stream_idle_s: a stream unused this long is deleted (``None``: kept until deleted or evicted).
        max_request_mb: largest request body (413 ``request_too_large``); also the WebSocket message limit.
        max_image_mb: largest encoded image (413 ``image_too_large``).
        max_image_pixels: largest decoded image, width x height (413 ``image_too_large``).
        max_images_per_request: most new frames one request may add (413 ``too_many_images``).
        allow_image_urls: fetch ``http(s)://`` image URLs (off: only data URLs are accepted).
        url_timeout_s: time limit of one image fetch.
        max_batch: most streams in one forward.
        batch_window_ms: how long a batch waits for the previous batches' streams.
        prepare_workers: threads that turn frames into model inputs while a batch runs.
        threads: torch CPU threads (``None``: torch's default).
        device / dtype: where the model runs (default CUDA+bf16 when present, else CPU+fp32).
        policy: :class:`~agentkit.policies.vlm.config.VLMConfig` fields every stream starts from
            (``prompt``, ``instruction``, ``max_new_tokens``, ``window_s``...).
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    arch: str | None = None
    size: str = "tiny"
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = None
    max_streams: int = Field(64, ge=1)
    max_cache_mb: float = Field(2048.0, gt=0)
    stream_idle_s: float | None = Field(None, gt=0)
    max_request_mb: float = Field(32.0, gt=0)
    max_image_mb: float = Field(8.0, gt=0)
    max_image_pixels: int = Field(4096 * 4096, ge=1)
    max_images_per_request: int = Field(64, ge=1)
    allow_image_urls: bool = True
    url_timeout_s: float = Field(10.0, gt=0)
    max_batch: int = Field(8, ge=1)
    batch_window_ms: float = Field(5.0, ge=0)
    prepare_workers: int = Field(2, ge=0)
    threads: int | None = Field(None, ge=1)
    device: str | None = None
    dtype: str | None = None
    policy: dict[str, Any] = Field(default_factory=dict)

    def check(self) -> ServeConfig:
        """Raise :class:`ConfigError` for settings that contradict each other (one line each)."""
        if (self.model is None) == (self.arch is None):
            raise ConfigError("give exactly one of --model PATH and --arch ARCH")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty")
        if not is_loopback(self.host) and not self.api_key:
            raise ConfigError(
                f"refusing to listen on {self.host} without an API key: give --api-key (or AGENTKIT_API_KEY), "
                "or bind to 127.0.0.1"
            )
        bad = {"model", "record"} & set(self.policy)
        if bad:
            raise ConfigError(f"policy option(s) {sorted(bad)} cannot be set for served streams")
        return self

    @property
    def max_cache_bytes(self) -> int:
        return int(self.max_cache_mb * 2**20)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 2**20)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 2**20)


__all__ = ["ServeConfig", "is_loopback"]
