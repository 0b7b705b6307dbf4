"""Contact-sheet helpers: boxes land where the decision says, tiles line up, the PNG is written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agentkit.annotate import BOX_COLOR
from agentkit.benchmarks.sheet import contact_sheet, event_thumbnail, save_png
from agentkit.types import Box, Decision, Frame


def test_thumbnail_sheet_and_png(tmp_path: Path) -> None:
    frame = Frame(np.full((200, 400, 3), 90, np.uint8), t=0.0, pts=12.5, seq=0)
    d = Decision.response(
        "A person arrived (1 person in view).",
        pts=12.5,
        boxes=[Box(0.25, 0.1, 0.5, 0.9, label="person")],
        meta={"departed": [{"x1": 0.8, "y1": 0.2, "x2": 1.0, "y2": 0.9}]},
    )
    th = event_thumbnail(frame, d, width=200)
    assert th.shape == (100, 200, 3)
    assert tuple(th[50, 50]) == BOX_COLOR  # left edge of the person box at x = 0.25
    assert tuple(th[50, 160]) == (230, 40, 40)  # left edge of the red departed box at x = 0.8
    assert th[85:, :, :].mean() < frame.image.mean()  # the caption band darkens the bottom
    sheet = contact_sheet([th] * 5, cols=4)
    assert sheet.shape == (2 * 100, 4 * 200, 3)
    assert not sheet[100:, 200:].any()  # padding cells are black
    out = save_png(tmp_path / "s.png", sheet)
    back = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert back.shape == sheet.shape
    assert np.abs(back.astype(int) - sheet.astype(int)).max() <= 4  # quantized to 32 levels
    with pytest.raises(ValueError):
        contact_sheet([])
