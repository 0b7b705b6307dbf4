"""A WebSocket consumer of a live dashboard, for benchmarks and tests: counts what it gets.

``python -m agentkit.apps.dashboard.client ws://127.0.0.1:8765/ws --json stats.json`` reads every
message until the server says ``bye`` (or ``--seconds`` pass) and writes the counts. ``--delay-ms`` makes
it a slow client (it sleeps after each message) and ``--rcvbuf`` shrinks its socket's receive buffer, so
the server feels the back-pressure at once instead of after the kernel's megabytes of buffering.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agentkit.apps.dashboard.runtime import unpack_frame


def consume(
    url: str, *, seconds: float | None = None, delay_ms: float = 0.0, rcvbuf: int | None = None
) -> dict[str, Any]:
    """Read messages from ``url`` (``ws://host:port/ws``) until ``bye``, a close, or ``seconds``."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    u = urlparse(url)
    sock = socket.socket(socket.AF_INET6 if ":" in (u.hostname or "") else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((u.hostname, u.port or 80))
    stats: dict[str, Any] = {
        "messages": 0,
        "frames": 0,
        "bytes": 0,
        "updates": 0,
        "decisions": 0,
        "missed": 0,
        "actions": 0,
        "frame_id_gaps": 0,
        "bye": False,
        "streams": [],
    }
    last_id: dict[str, int] = {}
    t0 = time.monotonic()
    with connect(url, sock=sock, compression=None, max_size=16 << 20, open_timeout=10) as ws:
        while seconds is None or time.monotonic() - t0 < seconds:
            try:
                msg = ws.recv(timeout=1.0)
            except TimeoutError:
                continue
            except ConnectionClosed:
                break
            stats["messages"] += 1
            if isinstance(msg, bytes):
                header, _jpeg = unpack_frame(msg)
                stats["frames"] += 1
                stats["bytes"] += len(msg)
                prev = last_id.get(header["stream"])
                if prev is not None and header["id"] > prev + 1:
                    stats["frame_id_gaps"] += header["id"] - prev - 1
                last_id[header["stream"]] = header["id"]
            else:
                stats["bytes"] += len(msg)
                data = json.loads(msg)
                if data["type"] == "hello":
                    stats["streams"] = data["streams"]
                elif data["type"] == "update":
                    stats["updates"] += 1
                    stats["decisions"] += len(data.get("decisions", []))
                    stats["missed"] += data.get("missed", 0)
                    stats["actions"] += len(data.get("actions", []))
                    if data["stream"] not in stats["streams"]:
                        stats["streams"].append(data["stream"])
                elif data["type"] == "bye":
                    stats["bye"] = True
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="ws://HOST:PORT/ws")
    p.add_argument("--json", type=Path, help="write the counts here")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--rcvbuf", type=int, default=None)
    args = p.parse_args(argv)
    stats = consume(args.url, seconds=args.seconds, delay_ms=args.delay_ms, rcvbuf=args.rcvbuf)
    text = json.dumps(stats, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
