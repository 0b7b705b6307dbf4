import math

import numpy as np
import pytest

from agentkit.types import Box, Decision, DecisionKind, Frame, Point, ToolCall


def test_point_rejects_out_of_range_and_nan():
    for bad in [(-0.01, 0.5), (0.5, 1.01), (math.nan, 0.1), (math.inf, 0.2)]:
        with pytest.raises(ValueError):
            Point(*bad)
    assert Point(0, 1).to_pixels(100, 50) == (0, 49)  # clamped inside the image


def test_box_validates_order_and_clamps_from_pixels():
    with pytest.raises(ValueError):
        Box(0.5, 0.1, 0.2, 0.3)
    b = Box.from_pixels(-3, 10, 105, 40, 100, 50, label="person")
    assert (b.x1, b.x2) == (0.0, 1.0) and b.label == "person"
    assert b.center == Point(0.5, 0.5)
    assert Box(0, 0, 0.5, 0.5).iou(Box(0.25, 0, 0.75, 0.5)) == pytest.approx(1 / 3)


def test_frame_requires_rgb_uint8():
    with pytest.raises(ValueError):
        Frame(np.zeros((4, 4), np.uint8), 0, 0, 0)
    with pytest.raises(ValueError):
        Frame(np.zeros((4, 4, 3), np.float32), 0, 0, 0)
    f = Frame(np.zeros((4, 6, 3), np.uint8), 0.0, 1.5, 3, "x")
    assert (f.width, f.height) == (6, 4) and "4" in repr(f) and "array" not in repr(f)


def test_decision_round_trip():
    d = Decision.response(
        "hi",
        seq=4,
        pts=1.25,
        points=[Point(0.1, 0.2)],
        boxes=[Box(0.1, 0.1, 0.2, 0.2, label="a", score=0.9)],
        tool_calls=[ToolCall("click", {"point": Point(0.3, 0.4)})],
        errors=["x"],
        meta={"event": "arrive"},
    )
    data = d.to_dict()
    assert data["kind"] == "response" and data["tool_calls"][0]["arguments"]["point"] == {"x": 0.3, "y": 0.4}
    back = Decision.from_dict(data)
    assert back.kind is DecisionKind.RESPONSE and back.points == d.points and back.boxes[0].label == "a"
    assert back.meta == {"event": "arrive"}
