"""Start ``agentkit serve``: load (or build) the model, make the app, listen with uvicorn.

The socket is bound here, before uvicorn starts, so the first line printed names the real address (with
``--port 0`` the system picks a free port) and a bind error is one clear line.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from agentkit.apps.serve.config import ServeConfig
from agentkit.errors import ConfigError

log = logging.getLogger(__name__)


def load_model(config: ServeConfig) -> Any:
    """The :class:`~agentkit.policies.vlm.loading.Loaded` model of ``config`` (a checkpoint, or random weights
    of ``--arch`` at ``--size``)."""
    from agentkit.policies.vlm.loading import Loaded, load, pick_device

    if config.model is not None:
        return load(config.model, device=config.device, dtype=config.dtype)
    from agentkit.policies.vlm.architectures import get_arch
    from agentkit.policies.vlm.build import SIZES, build_model

    if config.size not in SIZES:
        raise ConfigError(f"--size must be one of {', '.join(SIZES)}, got {config.size!r}")
    try:
        spec = get_arch(str(config.arch))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    dev, dt = pick_device(config.device, config.dtype)
    model, tok, proc = build_model(spec.name, config.size, 0, dtype=dt, device=dev)
    return Loaded(spec.name, spec.make_adapter(model, tok, proc), f"random:{spec.name}:{config.size}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is one)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Run the server until interrupted (SIGINT/SIGTERM end it after the requests in progress)."""
    import torch
    import uvicorn

    from agentkit.apps.serve.app import create_app, model_name_for
    from agentkit.apps.serve.service import StreamService
    from agentkit.policies.vlm.batch import cpu_attention_gqa

    config.check()
    if config.threads:
        torch.set_num_threads(config.threads)
    loaded = load_model(config)
    cpu_attention_gqa(loaded.adapter.device)
    name = config.served_model_name or model_name_for(loaded.source)
    service = StreamService(config, loaded, name)
    app = create_app(service)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = "API key required" if config.api_key else "no API key (loopback only)"
    announce(
        f"agentkit serve: {name} ({loaded.arch}) on http://{shown}:{port}/v1 ; {auth}; "
        f"max_batch={config.max_batch}, max_streams={config.max_streams}, torch threads={torch.get_num_threads()}"
    )
    uv = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=config.max_request_bytes,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    uvicorn.Server(uv).run(sockets=[sock])


__all__ = ["bind", "load_model", "serve"]
