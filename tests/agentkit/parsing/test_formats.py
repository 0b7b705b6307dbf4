"""Example-based tests: one real-looking answer per model format, and every error path we promise."""

from __future__ import annotations

import pytest

from agentkit.parsing import CoordFormat, ParseResult, parse_response, smart_resize
from agentkit.types import Box, Point

# A 1920x1080 screenshot as Qwen2.5-VL / UI-TARS-1.5 see it with the default processor.
H, W = smart_resize(1080, 1920)
SIZE = (W, H)  # (1316, 728)


def approx_point(p: Point, x: float, y: float, tol: float = 1e-6) -> None:
    assert p.x == pytest.approx(x, abs=tol) and p.y == pytest.approx(y, abs=tol), p


def approx_arg(d: dict, x: float, y: float, tol: float = 1e-6) -> None:
    assert d["x"] == pytest.approx(x, abs=tol) and d["y"] == pytest.approx(y, abs=tol), d


# --- Qwen2-VL / OS-Atlas (0-1000) ----------------------------------------------------------------


def test_qwen2_vl_box_with_ref_label():
    out = "<|object_ref_start|>the red car<|object_ref_end|><|box_start|>(120,345),(456,789)<|box_end|> is parked."
    r = parse_response(out)
    assert r.errors == []
    assert r.text == "the red car is parked."
    assert r.boxes == [Box(0.12, 0.345, 0.456, 0.789, label="the red car")]


def test_qwen2_vl_several_boxes_one_ref_and_a_point():
    out = (
        "<|object_ref_start|>cats<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>"
        "<|box_start|>(50,60),(70,80)<|box_end|> and a click at <|box_start|>(500,250)<|box_end|>"
    )
    r = parse_response(out, "qwen2_vl")
    assert [b.label for b in r.boxes] == ["cats", "cats"]
    approx_point(r.points[0], 0.5, 0.25)
    assert r.text == "cats and a click at"


def test_os_atlas_grounding_answer():
    r = parse_response("<|object_ref_start|>Search button<|object_ref_end|><|box_start|>(812,47),(861,88)<|box_end|>")
    assert r.boxes[0].to_dict() == {"x1": 0.812, "y1": 0.047, "x2": 0.861, "y2": 0.088, "label": "Search button"}


def test_box_out_of_range_is_dropped_not_clamped():
    r = parse_response("<|box_start|>(1200,30),(1300,60)<|box_end|>")
    assert r.boxes == [] and r.points == []
    assert r.errors == ["box (1200, 30, 1300, 60) outside 0-1000 range"]


def test_swapped_corners_are_reordered():
    r = parse_response("<|box_start|>(456,789),(120,345)<|box_end|>")
    assert r.boxes == [Box(0.12, 0.345, 0.456, 0.789)]
    assert r.errors == []


def test_unterminated_box_markup_is_an_error():
    r = parse_response("the cat <|box_start|>(100,200),(300")
    assert r.boxes == [] and len(r.errors) == 1 and "unterminated" in r.errors[0]
    assert "<|box_start|>" not in r.text


def test_box_with_three_numbers_is_an_error():
    r = parse_response("<|box_start|>(100,200),(300)<|box_end|>")
    assert r.boxes == [] and r.points == [] and "malformed <|box_start|>" in r.errors[0]


# --- Qwen2.5-VL JSON (resized pixels) ------------------------------------------------------------


QWEN25_ANSWER = """Here are the objects:
```json
[
\t{"bbox_2d": [135, 114, 1016, 672], "label": "person"},
\t{"bbox_2d": [1020, 300, 1300, 720], "label": "bicycle"}
]
```"""


def test_qwen25_fenced_bboxes_in_resized_pixels():
    r = parse_response(QWEN25_ANSWER, "qwen2_5_vl", resized_size=SIZE)
    assert r.errors == []
    assert r.text == "Here are the objects:"
    assert [b.label for b in r.boxes] == ["person", "bicycle"]
    b = r.boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((135 / W, 114 / H, 1016 / W, 672 / H))


def test_qwen25_auto_mode_detects_json_and_uses_resized_size():
    assert (
        parse_response(QWEN25_ANSWER, resized_size=SIZE).boxes
        == parse_response(QWEN25_ANSWER, "qwen2_5_vl", resized_size=SIZE).boxes
    )


def test_qwen25_auto_without_resized_size_records_not_guesses():
    r = parse_response(QWEN25_ANSWER)
    assert r.boxes == []
    assert len(r.errors) == 2 and all("pass resized_size" in e for e in r.errors)


def test_qwen25_bare_point_json_and_nested_waypoints():
    r = parse_response('The mug is here: [{"point_2d": [658, 364], "label": "mug"}]', resized_size=SIZE)
    approx_point(r.points[0], 658 / W, 364 / H)
    assert r.text == "The mug is here:"
    r = parse_response('{"waypoints": [{"point_2d": [10, 20]}, {"point_2d": [30, 40]}]}', resized_size=SIZE)
    assert len(r.points) == 2 and r.errors == []


def test_qwen25_pixel_beyond_resized_image_is_dropped():
    r = parse_response('[{"bbox_2d": [10, 10, 1400, 50]}]', "qwen2_5_vl", resized_size=SIZE)
    assert r.boxes == [] and r.errors == [f"box (10, 10, 1400, 50) outside {W}x{H} resized image"]


def test_qwen25_malformed_json_is_recorded():
    trailing_comma = '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"},]\n```'
    r = parse_response(trailing_comma, resized_size=SIZE)
    assert r.boxes == [] and "malformed grounding JSON" in r.errors[0]
    truncated = '```json\n[{"bbox_2d": [1, 2, 3, '
    r = parse_response(truncated, resized_size=SIZE)
    assert r.boxes == [] and r.errors and r.text == ""


def test_json_nan_is_rejected():
    r = parse_response('[{"point_2d": [NaN, 3]}]', resized_size=SIZE)
    assert r.points == [] and r.errors


# --- UI-TARS -------------------------------------------------------------------------------------


def uitars(action: str, thought: str = "I should act.") -> ParseResult:
    return parse_response(f"Thought: {thought}\nAction: {action}", "ui_tars", resized_size=SIZE)


def test_uitars_click_box_start_and_point_forms():
    for action in ("click(start_box='<|box_start|>(658,364)<|box_end|>')", "click(point='<point>658 364</point>')"):
        r = uitars(action)
        assert r.errors == [] and r.text == "Thought: I should act."
        (call,) = r.tool_calls
        assert call.name == "click"
        approx_arg(call.arguments["point"], 658 / W, 364 / H)


def test_uitars_click_on_a_box_uses_its_centre():
    r = uitars("click(start_box='(100,200,300,400)')")
    approx_arg(r.tool_calls[0].arguments["point"], 200 / W, 300 / H)


def test_uitars_vocabulary_mapping():
    cases = {
        "left_double(point='<point>10 20</point>')": ("double_click", {"point"}),
        "right_single(point='<point>10 20</point>')": ("right_click", {"point"}),
        "hotkey(key='ctrl c')": ("key", {"keys"}),
        "type(content='hello world\\n')": ("type", {"text"}),
        "scroll(point='<point>500 300</point>', direction='down')": ("scroll", {"point", "direction"}),
        "drag(start_point='<point>100 200</point>', end_point='<point>400 200</point>')": ("drag", {"start", "end"}),
        "wait()": ("wait", set()),
        "finished(content='The price is $12.')": ("finished", {"answer"}),
        "middle_click(point='<point>10 20</point>')": ("click", {"point", "button"}),
    }
    for action, (name, keys) in cases.items():
        r = uitars(action)
        assert r.errors == [], (action, r.errors)
        assert [c.name for c in r.tool_calls] == [name], action
        assert set(r.tool_calls[0].arguments) == keys, action
    assert uitars("hotkey(key='ctrl c')").tool_calls[0].arguments == {"keys": ["ctrl", "c"]}
    assert uitars("type(content='hello world\\n')").tool_calls[0].arguments == {"text": "hello world\n"}
    assert (
        uitars("scroll(point='<point>500 300</point>', direction='down')").tool_calls[0].arguments["direction"]
        == "down"
    )


def test_uitars_unescaped_quote_in_content_and_several_actions():
    r = uitars("type(content='it's done')")
    assert r.tool_calls[0].arguments == {"text": "it's done"}
    r = uitars("click(point='<point>1 2</point>')\n\ntype(content='abc')")
    assert [c.name for c in r.tool_calls] == ["click", "type"]


def test_uitars_v1_is_0_1000_and_auto_needs_size():
    r = parse_response("Action: click(start_box='<|box_start|>(500,500)<|box_end|>')", "ui_tars_v1")
    approx_arg(r.tool_calls[0].arguments["point"], 0.5, 0.5)
    r = parse_response("Action: click(start_box='<|box_start|>(500,500)<|box_end|>')")
    assert r.tool_calls == [] and "pass resized_size" in r.errors[0] and "ui_tars_v1" in r.errors[0]
    r = parse_response("Action: click(start_box='<|box_start|>(658,364)<|box_end|>')", resized_size=SIZE)
    approx_arg(r.tool_calls[0].arguments["point"], 658 / W, 364 / H)


def test_uitars_malformed_and_out_of_range():
    r = uitars("click(start_box='(100,200)")
    assert r.tool_calls == [] and "malformed action" in r.errors[0]
    r = uitars("click(point='<point>2000 10</point>')")
    assert r.tool_calls == [] and any(f"outside {W}x{H}" in e for e in r.errors)
    r = uitars("scroll(point='<point>5 5</point>', direction='sideways')")
    assert r.tool_calls == [] and "direction" in r.errors[0]


def test_prose_mentioning_click_is_not_an_action():
    r = parse_response("You could click(here) or type (something) later.")
    assert r.tool_calls == [] and r.errors == []


def test_uitars_pass_through_outside_vocabulary():
    r = uitars("call_user()")
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("call_user", {})]
    r = uitars("long_press(point='<point>658 364</point>')")
    assert r.tool_calls[0].name == "long_press"
    approx_arg(r.tool_calls[0].arguments["point"], 658 / W, 364 / H)


# --- Molmo (percent) -----------------------------------------------------------------------------


def test_molmo_point_and_points():
    r = parse_response('Here: <point x="61.5" y="40.6" alt="the dog">the dog</point>.')
    approx_point(r.points[0], 0.615, 0.406)
    assert r.text == "Here: the dog."
    r = parse_response('<points x1="14.0" y1="73.2" x2="16.7" y2="63.6" x3="96.5" y3="59.0" alt="cups">cups</points>')
    assert [(round(p.x, 3), round(p.y, 3)) for p in r.points] == [(0.14, 0.732), (0.167, 0.636), (0.965, 0.59)]


def test_molmo_out_of_range_and_unterminated():
    r = parse_response('<point x="101.0" y="40.0" alt="x">x</point>')
    assert r.points == [] and r.errors == ["point (101.0, 40.0) outside 0-100 percent range"]
    r = parse_response('<point x="50.0" y="40.0" alt="x">x')
    assert r.points == [] and "unterminated" in r.errors[0]


def test_qwen3_style_points_tag_with_qwen2_vl_fmt_is_0_1000():
    r = parse_response('<points x1="745" y1="312"></points>', "qwen2_vl")
    approx_point(r.points[0], 0.745, 0.312)


# --- ShowUI / RoboPoint / normalized (0-1) -------------------------------------------------------


def test_showui_grounding_and_navigation():
    r = parse_response("[0.73, 0.21]", "showui")
    approx_point(r.points[0], 0.73, 0.21)
    r = parse_response("{'action': 'CLICK', 'value': None, 'position': [0.49, 0.42]}")
    assert r.tool_calls[0].name == "click" and r.errors == []
    approx_arg(r.tool_calls[0].arguments["point"], 0.49, 0.42)
    r = parse_response("{'action': 'INPUT', 'value': 'weather in Paris', 'position': [0.3, 0.1]}")
    assert [(c.name) for c in r.tool_calls] == ["click", "type"]
    assert r.tool_calls[1].arguments == {"text": "weather in Paris"}
    r = parse_response("{'action': 'SCROLL', 'value': 'down', 'position': None}")
    assert r.tool_calls[0].arguments == {"direction": "down"}


def test_robopoint_list():
    r = parse_response("[(0.461, 0.592), (0.473, 0.601), (0.487, 0.578)]")
    assert len(r.points) == 3 and r.errors == [] and r.text == ""
    approx_point(r.points[2], 0.487, 0.578)


def test_bare_lists_out_of_range_with_explicit_fmt_are_errors_and_prose_lists_stay_in_auto():
    r = parse_response("[1.2, 0.5]", "showui")
    assert r.points == [] and r.errors == ["point (1.2, 0.5) outside 0-1 range"]
    r = parse_response("[(-0.1, 0.5)]", "robopoint")
    assert r.points == [] and "outside 0-1 range" in r.errors[0]
    r = parse_response("Steps [1, 2] and [3, 4] are done.")
    assert r.points == [] and r.errors == [] and r.text == "Steps [1, 2] and [3, 4] are done."


# --- tool calls ----------------------------------------------------------------------------------


def tool_call(name: str, args: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


def test_qwen_computer_use_mapping():
    click = tool_call("computer_use", '{"action": "left_click", "coordinate": [658, 364]}')
    r = parse_response(click, resized_size=SIZE)
    assert r.errors == [] and r.tool_calls[0].name == "click"
    approx_arg(r.tool_calls[0].arguments["point"], 658 / W, 364 / H)
    cases = [
        ('{"action": "key", "keys": ["ctrl", "c"]}', "key", {"keys": ["ctrl", "c"]}),
        ('{"action": "type", "text": "hello"}', "type", {"text": "hello"}),
        ('{"action": "scroll", "pixels": -5}', "scroll", {"direction": "down", "amount": 5}),
        ('{"action": "wait", "time": 2}', "wait", {"seconds": 2.0}),
        ('{"action": "terminate", "status": "success"}', "finished", {}),
        ('{"action": "terminate", "status": "failure"}', "finished", {"answer": "failure"}),
        ('{"action": "answer", "text": "42"}', "finished", {"answer": "42"}),
    ]
    for args, name, expected in cases:
        r = parse_response(tool_call("computer_use", args), resized_size=SIZE)
        assert [(c.name, c.arguments) for c in r.tool_calls] == [(name, expected)], args
    r = parse_response(tool_call("computer_use", '{"action": "left_click_drag", "coordinate": [0, 0]}'), "qwen2_vl")
    assert r.tool_calls[0].arguments == {"end": {"x": 0.0, "y": 0.0}}
    r = parse_response(tool_call("computer_use", '{"action": "double_click", "coordinate": [658, 364]}'))
    assert r.tool_calls == [] and any("pass resized_size" in e for e in r.errors)


def test_generic_and_robot_tool_calls_pass_through_with_points_converted():
    r = parse_response(tool_call("pick", '{"object": "red cube", "point": [0.4, 0.6]}'))
    assert r.tool_calls[0].name == "pick" and r.tool_calls[0].arguments["object"] == "red cube"
    approx_arg(r.tool_calls[0].arguments["point"], 0.4, 0.6)
    r = parse_response(tool_call("place", '{"point": [400, 600]}'), "qwen2_vl")
    approx_arg(r.tool_calls[0].arguments["point"], 0.4, 0.6)
    r = parse_response(tool_call("go_to", '{"point": {"x": 50, "y": 25}}'), "molmo")
    approx_arg(r.tool_calls[0].arguments["point"], 0.5, 0.25)
    r = parse_response(tool_call("home", "{}") + tool_call("open_gripper", "{}"))
    assert [c.name for c in r.tool_calls] == ["home", "open_gripper"]
    r = parse_response(tool_call("push", '{"start": [0.1, 0.1], "end": [0.3, 0.1]}'), "normalized")
    approx_arg(r.tool_calls[0].arguments["end"], 0.3, 0.1)


def test_tool_call_out_of_range_point_drops_the_call():
    r = parse_response(tool_call("pick", '{"point": [640, 320]}'))
    assert r.tool_calls == [] and any("outside 0-1 range" in e for e in r.errors)
    assert any("pass fmt=" in e for e in r.errors)
    r = parse_response(tool_call("pick", '{"point": [1200, 30]}'), "qwen2_vl")
    assert r.tool_calls == [] and any("(1200, 30) outside 0-1000 range" in e for e in r.errors)


def test_malformed_tool_calls_are_recorded():
    bad = {
        '<tool_call>{"name": "click", "arguments": {"point": [0.1, 0.2]},}</tool_call>': "malformed <tool_call> JSON",
        "<tool_call>[1, 2]</tool_call>": "must hold a JSON object",
        '<tool_call>{"arguments": {}}</tool_call>': "without a name",
        '<tool_call>{"name": "click", "arguments": 5}</tool_call>': "arguments must be an object",
        '<tool_call>{"name": "click", "arguments": {"point": [0.1, 0.2]': "unterminated <tool_call>",
    }
    for text, msg in bad.items():
        r = parse_response(text)
        assert r.tool_calls == [] and any(msg in e for e in r.errors), (text, r.errors)


def test_tool_call_string_arguments_and_missing_close_tag():
    r = parse_response('<tool_call>{"name": "type", "arguments": "{\\"text\\": \\"hi\\"}"}</tool_call>')
    assert r.tool_calls[0].arguments == {"text": "hi"}
    r = parse_response('Sure.\n<tool_call>\n{"name": "wait", "arguments": {}}')  # server ate </tool_call>
    assert [c.name for c in r.tool_calls] == ["wait"] and r.errors == [] and r.text == "Sure."


# --- arguments -----------------------------------------------------------------------------------


def test_programming_errors_raise_value_error():
    with pytest.raises(ValueError, match="fmt must be one of"):
        parse_response("x", "qwen3000")
    for fmt in ("qwen2_5_vl", "ui_tars", CoordFormat.UI_TARS):
        with pytest.raises(ValueError, match="resized_size"):
            parse_response("x", fmt)
    for bad in ((0, 10), (10,), (10.5, 3), "640x480", (True, 3)):
        with pytest.raises(ValueError, match="resized_size"):
            parse_response("x", resized_size=bad)  # type: ignore[arg-type]


def test_non_text_input_is_recorded_not_raised():
    r = parse_response(None)  # type: ignore[arg-type]
    assert r.errors == ["model output is not text: NoneType"]


def test_plain_text_passes_through():
    r = parse_response("  Nothing to see here.  ")
    assert r == ParseResult(text="Nothing to see here.")


def test_smart_resize_known_values():
    assert smart_resize(1080, 1920) == (728, 1316)
    assert smart_resize(480, 640) == (476, 644)
    assert smart_resize(10, 10) == (56, 56)  # lifted to min_pixels
    with pytest.raises(ValueError):
        smart_resize(1, 500)


def test_docstring_examples_hold():
    import doctest

    import agentkit.parsing as pkg
    from agentkit.parsing import formatting, parse, resize

    for mod in (pkg, formatting, parse, resize):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def test_point_lists_and_boxes_in_tool_arguments():
    r = parse_response(tool_call("push", '{"points": [[100, 200], [300, 400]], "bbox": [10, 20, 5, 1]}'), "qwen2_vl")
    args = r.tool_calls[0].arguments
    assert args["points"] == [{"x": 0.1, "y": 0.2}, {"x": 0.3, "y": 0.4}]
    assert args["bbox"] == {"x1": 0.005, "y1": 0.001, "x2": 0.01, "y2": 0.02}  # corners reordered
    r = parse_response(tool_call("pick", '{"point": "somewhere"}'))
    assert r.tool_calls == [] and any("expected a point" in e for e in r.errors)


def test_error_flood_is_capped():
    r = parse_response("<|box_start|>(2000,1)<|box_end|>" * 100)
    assert len(r.errors) == 33 and r.errors[-1] == "... and 68 more errors"


def test_end_of_turn_tokens_are_stripped():
    r = parse_response("<|object_ref_start|>cup<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|><|im_end|>")
    assert r.text == "cup" and len(r.boxes) == 1
    assert parse_response("It is raining.<end_of_utterance>").text == "It is raining."


def test_calls_validate_against_agentkit_gui_and_robot_schemas():
    """What the parser emits is what agentkit's tools accept (their pydantic Args, extra fields forbidden)."""
    gui = pytest.importorskip("agentkit.tools.gui")
    robot = pytest.importorskip("agentkit.tools.robot")
    args_of = {
        "click": gui.ClickArgs,
        "double_click": gui.PointArgs,
        "right_click": gui.PointArgs,
        "move": gui.PointArgs,
        "type": gui.TypeArgs,
        "key": gui.KeyArgs,
        "scroll": gui.ScrollArgs,
        "drag": gui.DragArgs,
        "wait": gui.WaitArgs,
        "finished": gui.FinishedArgs,
        "pick": robot.PickArgs,
        "push": robot.PushArgs,
    }
    answers = [
        uitars("click(point='<point>658 364</point>')"),
        uitars("left_double(point='<point>658 364</point>')"),
        uitars("right_single(point='<point>658 364</point>')"),
        uitars("middle_click(point='<point>658 364</point>')"),
        uitars("type(content='hi\\n')"),
        uitars("hotkey(key='ctrl c')"),
        uitars("scroll(point='<point>658 364</point>', direction='up')"),
        uitars("drag(start_point='<point>1 2</point>', end_point='<point>3 4</point>')"),
        uitars("wait()"),
        uitars("finished(content='done')"),
        parse_response(
            tool_call("computer_use", '{"action": "scroll", "pixels": 3, "coordinate": [5, 5]}'), resized_size=SIZE
        ),
        parse_response(tool_call("computer_use", '{"action": "terminate", "status": "failure"}')),
        parse_response(tool_call("computer_use", '{"action": "mouse_move", "coordinate": [5, 5]}'), resized_size=SIZE),
        parse_response("{'action': 'ANSWER', 'value': 'Paris', 'position': None}"),
        parse_response(tool_call("pick", '{"point": [500, 500]}'), "qwen2_vl"),
        parse_response(tool_call("push", '{"point_from": [0.1, 0.2], "point_to": [0.3, 0.4]}')),
    ]
    for r in answers:
        assert r.errors == [] and len(r.tool_calls) == 1, r
        call = r.tool_calls[0]
        args_of[call.name].model_validate(call.arguments)


def test_os_atlas_pro_actions_are_0_1000():
    r = parse_response("thoughts:\nOpen the search box.\nactions:\nCLICK <point>[[101, 872]]</point>")
    assert r.errors == [] and r.text == "thoughts:\nOpen the search box."
    assert r.tool_calls[0].name == "click"
    approx_arg(r.tool_calls[0].arguments["point"], 0.101, 0.872)
    r = parse_response("actions:\nTYPE [Shanghai shopping mall]\nSCROLL [UP]\nENTER\nPRESS_BACK\nCOMPLETE")
    assert [(c.name, c.arguments) for c in r.tool_calls] == [
        ("type", {"text": "Shanghai shopping mall"}),
        ("scroll", {"direction": "up"}),
        ("key", {"keys": ["enter"]}),
        ("press_back", {}),
        ("finished", {}),
    ]
    r = parse_response("CLICK <point>[[1001, 872]]</point>")
    assert r.tool_calls == [] and r.errors == ["CLICK: point (1001, 872) outside 0-1000 range"]
    r = parse_response("Target: <point>[[500, 250]]</point>")  # OS-Atlas grounding: 0-1000, no size needed
    approx_point(r.points[0], 0.5, 0.25)
    assert parse_response("Please CLICK the button and TYPE [x] later.").tool_calls == []  # not at a line start
