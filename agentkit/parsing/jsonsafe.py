"""Strict JSON for model output: ``json.loads`` only, no NaN/Infinity, no eval, never a stray exception.

Model text is data. Everything that looks like JSON goes through :func:`loads_strict`, which returns the
value or an error string. Python-literal dicts (ShowUI prints ``{'action': 'CLICK', 'value': None}``)
are first translated token by token into JSON by :func:`pyish_to_json` - they are never evaluated.
"""

from __future__ import annotations

import json
import re
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def loads_strict(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` if ``text`` is strict JSON, else ``(None, "one-line reason")``."""
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, int too long
        return None, str(e).splitlines()[0][:160]


def raw_decode_strict(text: str, start: int) -> tuple[Any, int] | None:
    """Decode one JSON value starting exactly at ``start``; ``(value, end)`` or ``None``."""
    try:
        return json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text, start)
    except (ValueError, RecursionError):
        return None


_PY_TOKEN = re.compile(
    r"""'(?P<sq>(?:[^'\\]|\\.)*)'|"(?P<dq>(?:[^"\\]|\\.)*)"|(?P<kw>\bNone\b|\bTrue\b|\bFalse\b)|(?P<other>[^'"NTF]+|.)""",
    re.DOTALL,
)
_PY_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def unescape_py(s: str) -> str:
    """Undo the backslash escapes models use inside quoted strings (``\\n``, ``\\'``, ``\\"``, ``\\\\``)."""
    return re.sub(r"\\(.)", lambda m: _PY_ESCAPES.get(m.group(1), "\\" + m.group(1)), s, flags=re.DOTALL)


def pyish_to_json(text: str) -> str:
    """Translate a Python-literal-looking dict/list into JSON text (quotes, None/True/False only)."""
    out: list[str] = []
    for m in _PY_TOKEN.finditer(text):
        if m.group("sq") is not None:
            out.append(json.dumps(unescape_py(m.group("sq"))))
        elif m.group("dq") is not None:
            out.append('"' + m.group("dq") + '"')
        elif m.group("kw") is not None:
            out.append({"None": "null", "True": "true", "False": "false"}[m.group("kw")])
        else:
            out.append(m.group("other"))
    return "".join(out)
