"""Tools: named actions with a JSON schema, validated before they run.

Model output is data. A :class:`ToolCall` parsed from text goes through :meth:`ToolBox.validate`
(pydantic, against the tool's argument model) and only a valid call reaches :meth:`Tool.run`. Every
rejection or failure becomes an :class:`~agentkit.types.ActionResult` with ``ok=False`` and a one-line
error - it is recorded, and the loop goes on.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

from agentkit.errors import ToolError
from agentkit.types import ActionResult, Point, ToolCall


def to_point(value: Any) -> Point:
    """Accept ``Point``, ``{"x":..,"y":..}`` or ``[x, y]`` in normalized coordinates."""
    if isinstance(value, Point):
        return value
    if isinstance(value, dict) and set(value) >= {"x", "y"}:
        return Point(float(value["x"]), float(value["y"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return Point(float(value[0]), float(value[1]))
    raise ValueError(f"expected a normalized point [x, y] or {{'x','y'}}, got {value!r}")


NormPoint = Annotated[
    Point,
    BeforeValidator(to_point),
    PlainSerializer(lambda p: p.to_dict(), return_type=dict),
]
"""A pydantic field type for a point in normalized [0, 1] image coordinates."""


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(abc.ABC):
    """One action. Subclasses set ``name``, ``description`` and ``Args`` (a pydantic model)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Args: ClassVar[type[BaseModel]] = NoArgs

    @abc.abstractmethod
    async def run(self, args: Any) -> Any:
        """Perform the action; return a JSON-able output. Raise :class:`ToolError` on failure."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI / Qwen function-calling schema of this tool."""
        params = cls.Args.model_json_schema()
        params.pop("title", None)
        return {
            "type": "function",
            "function": {"name": cls.name, "description": cls.description, "parameters": params},
        }


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class ToolBox:
    """The set of tools an executor may run; validates calls and runs them with timeouts."""

    def __init__(self, tools: Iterable[Tool] = (), timeout_s: float = 30.0) -> None:
        self.tools: dict[str, Tool] = {}
        self.timeout_s = timeout_s
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(f"duplicate tool name {tool.name!r}")
        self.tools[tool.name] = tool

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    def validate(self, call: ToolCall) -> tuple[Tool, BaseModel]:
        """Return the tool and its parsed arguments, or raise :class:`ToolError` with one line."""
        tool = self.tools.get(call.name)
        if tool is None:
            raise ToolError(f"unknown tool {call.name!r}; known: {', '.join(sorted(self.tools)) or 'none'}")
        if not isinstance(call.arguments, dict):
            raise ToolError(f"{call.name}: arguments must be an object, got {type(call.arguments).__name__}")
        try:
            return tool, tool.Args.model_validate(call.arguments)
        except ValidationError as e:
            raise ToolError(f"{call.name}: invalid arguments: {_one_line(e)}") from None

    async def run(self, call: ToolCall, seq: int = -1) -> ActionResult:
        """Validate and run one call. Never raises except for cancellation."""
        started = time.monotonic()
        try:
            tool, args = self.validate(call)
            ok, output, error = await self.execute(tool, args, call, seq)
        except ToolError as e:
            ok, output, error = False, None, str(e)
        except TimeoutError:
            ok, output, error = False, None, f"{call.name}: timed out after {self.timeout_s:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a tool bug must not stop the loop: record it with its type
            ok, output, error = False, None, f"{call.name}: {type(e).__name__}: {e}"
        return ActionResult(call, ok, seq, output, error, started, (time.monotonic() - started) * 1e3)

    async def execute(self, tool: Tool, args: BaseModel, call: ToolCall, seq: int) -> tuple[bool, Any, str | None]:
        """Run a validated call: ``(ok, output, error)``. Override to run tools elsewhere (a remote robot)."""
        return True, await asyncio.wait_for(tool.run(args), timeout=self.timeout_s), None
