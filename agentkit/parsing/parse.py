"""``parse_response``: model text -> :class:`ParseResult`, the single entry point of this package.

The extractors run in a fixed order, each consuming its markup so that later ones never re-read it:
tool calls, UI-TARS actions, ShowUI action dicts, OS-Atlas action lines, Qwen2.5-VL JSON, Qwen2-VL
``<|box_start|>``, Molmo tags, ``<point>``/``<bbox>`` tags, bare ``[x, y]`` lists. Parsing never raises
for any text; only bad *arguments* (an unknown fmt, a pixel fmt without ``resized_size``) raise ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentkit.parsing.actions import extract_osatlas, extract_showui, extract_uitars
from agentkit.parsing.formats import CoordFormat, check_resized_size
from agentkit.parsing.grounding import (
    extract_lists,
    extract_molmo,
    extract_point_tags,
    extract_qwen2_boxes,
    extract_qwen25_json,
)
from agentkit.parsing.result import ParseResult, _Context
from agentkit.parsing.toolcalls import extract_tool_calls

_Stage = Callable[[str, _Context], str]
_STAGES: tuple[tuple[str, _Stage], ...] = (
    ("tool_call", extract_tool_calls),
    ("ui_tars", extract_uitars),
    ("showui", extract_showui),
    ("os_atlas", extract_osatlas),
    ("qwen2_5_vl", extract_qwen25_json),
    ("qwen2_vl", extract_qwen2_boxes),
    ("molmo", extract_molmo),
    ("point_tag", extract_point_tags),
    ("lists", extract_lists),
)


# End-of-turn tokens a decoder keeps when it must keep the grounding tokens (skip_special_tokens=False).
_END_TOKENS = re.compile(r"<\|(?:im_end|endoftext|eot_id|end)\|>|<end_of_utterance>")


def _tidy(text: str) -> str:
    text = _END_TOKENS.sub("", text)
    text = re.sub(r"(?:^|\n)[ \t]*(?:[Aa]ctions?)[ \t]*[:：]\s*$", "", text)  # a label whose actions were all consumed
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip()


def parse_response(
    text: str,
    fmt: CoordFormat | str = "auto",
    resized_size: tuple[int, int] | None = None,
) -> ParseResult:
    """Split a model answer into free text, normalized points/boxes and tool calls.

    Args:
        text: the decoded model output (special tokens such as ``<|box_start|>`` kept).
        fmt: the model's coordinate convention (:class:`CoordFormat` or its value). ``"auto"`` reads each
            markup in its own convention (``<|box_start|>`` 0-1000, Molmo percent, Qwen2.5-VL JSON, UI-TARS
            and ``computer_use`` resized pixels, bare lists 0-1); an explicit fmt applies to every coordinate.
        resized_size: ``(width, height)`` of the image the model saw after :func:`smart_resize`; required
            for ``"qwen2_5_vl"`` and ``"ui_tars"``. In auto mode pixel coordinates without it are dropped
            and recorded as errors, never guessed.

    Returns:
        A :class:`ParseResult`. Out-of-range coordinates are dropped (not clamped) and recorded in
        ``errors``; swapped box corners are reordered.

    Raises:
        ValueError: ``fmt`` is unknown, ``resized_size`` is malformed, or a pixel fmt lacks ``resized_size``.

    Example:
        >>> r = parse_response("<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>")
        >>> r.text, r.boxes[0].to_dict()
        ('cat', {'x1': 0.1, 'y1': 0.2, 'x2': 0.3, 'y2': 0.4, 'label': 'cat'})
    """
    coord_fmt = CoordFormat.coerce(fmt)
    size = check_resized_size(resized_size)
    if coord_fmt.needs_resized_size and size is None:
        raise ValueError(
            f"fmt {coord_fmt.value!r} gives pixels of the resized image: pass resized_size=(width, height)"
        )
    result = ParseResult()
    if not isinstance(text, str):
        result.errors.append(f"model output is not text: {type(text).__name__}")
        return result
    ctx = _Context(coord_fmt, size, result)
    for name, stage in _STAGES:
        try:
            text = stage(text, ctx)
        except Exception as e:  # a parser bug must not stop the loop: record it (tests assert it never happens)
            result.errors.append(f"internal parser error in stage {name}: {type(e).__name__}: {e}")
    if ctx.suppressed:
        result.errors.append(f"... and {ctx.suppressed} more errors")
    result.text = _tidy(text)
    return result
