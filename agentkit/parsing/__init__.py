"""Parse model text into agentkit's canonical :class:`~agentkit.types.Point`, :class:`~agentkit.types.Box`
and :class:`~agentkit.types.ToolCall`.

Every model-specific coordinate convention (Qwen2-VL 0-1000, Qwen2.5-VL and UI-TARS resized pixels, Molmo
percent, ShowUI / RoboPoint 0-1) is converted here and nowhere else; see ``docs/parsing.md``.

Example:
    >>> from agentkit.parsing import parse_response, smart_resize
    >>> h, w = smart_resize(1080, 1920)
    >>> r = parse_response("Action: click(point='<point>658 364</point>')", "ui_tars", resized_size=(w, h))
    >>> r.tool_calls[0].name, round(r.tool_calls[0].arguments["point"]["x"], 3)
    ('click', 0.5)
"""

from agentkit.parsing.formats import CoordFormat
from agentkit.parsing.formatting import format_box, format_point, format_tool_call
from agentkit.parsing.parse import parse_response
from agentkit.parsing.resize import smart_resize
from agentkit.parsing.result import ParseResult

__all__ = [
    "CoordFormat",
    "ParseResult",
    "format_box",
    "format_point",
    "format_tool_call",
    "parse_response",
    "smart_resize",
]
