"""Narration sinks that need no file format of their own: the console and a JSON Lines message feed.

The ``narrate`` tool lets a policy speak through the same sinks by tool call, so a VLM that answers with
``<tool_call>{"name": "narrate", ...}`` and one that answers with plain Response text end up in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from agentkit.sinks import JsonlWriter, Sink
from agentkit.tooling import Tool
from agentkit.types import ActionResult, Decision, DecisionKind, Frame

_STYLE = {DecisionKind.RESPONSE: "bold green", DecisionKind.STANDBY: "yellow", DecisionKind.SILENCE: "dim"}


class ConsoleSink(Sink):
    """Prints Responses (and, with ``verbose``, Standby) as they happen: ``[  12.3s] A person arrived.``"""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.verbose = verbose

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if decision.kind is DecisionKind.RESPONSE or (self.verbose and decision.kind is DecisionKind.STANDBY):
            text = decision.text or ", ".join(c.name for c in decision.tool_calls) or decision.kind.value
            self.console.print(f"[{decision.pts:7.1f}s] {text}", style=_STYLE[decision.kind], markup=False)
        for err in decision.errors:
            self.console.print(f"[{decision.pts:7.1f}s] error: {err}", style="red", markup=False)

    def on_action(self, result: ActionResult) -> None:
        if not result.ok:
            self.console.print(f"action {result.call.name} failed: {result.error}", style="red", markup=False)


class MessageSink(Sink):
    """One JSON line per Response: ``{"pts", "text", "boxes"}`` — a feed a chat bot or a bus can forward."""

    def __init__(self, path: str | Path) -> None:
        self.out = JsonlWriter(path)

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if decision.kind is DecisionKind.RESPONSE and decision.text:
            d = decision.to_dict()
            self.out.write({k: d[k] for k in ("seq", "pts", "text", "boxes") if k in d})

    def close(self) -> None:
        self.out.close()


class NarrateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000, description="What to say.")


class NarrateTool(Tool):
    """Say something: forwards the text to the console (and whatever ``say`` callback is given)."""

    name = "narrate"
    description = "Say a short sentence to the user (subtitle and speech)."
    Args = NarrateArgs

    def __init__(self, say: Any = None) -> None:
        self._say = say or (lambda text: Console(stderr=True).print(text, markup=False))

    async def run(self, args: NarrateArgs) -> dict[str, Any]:
        self._say(args.text)
        return {"said": args.text}
