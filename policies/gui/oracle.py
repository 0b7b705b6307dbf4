"""A privileged MiniWoB++ expert: reads the DOM, answers with the same GUI tool calls as any policy.

Why this module exists: it is the upper bound of the benchmark harness (if the oracle fails, the
harness is wrong, not the policy) and a source of demonstrations to train on. It is *privileged*: it
declares ``privileged = True`` and reads ``Frame.privileged`` (the task name and the page's DOM, a
:class:`~agentkit.envs.gui.miniwob.MiniWoBPrivileged`), which the runner fills only for privileged
policies. Pixel-only policies never get it.

Its actions are ordinary ``click`` / ``type`` / ``move`` / ``scroll`` / ``drag`` tool calls at
normalized points computed from element boxes, so they go through the same ToolBox validation and
GUI tools as a VLM's actions. One solver per task; each is called every step with a fresh DOM and may
return the calls of several steps at once when nothing on the page has to change in between.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from typing import Any

from agentkit.envs.gui.miniwob import MiniWoBPrivileged
from agentkit.policy import Policy, PolicyConfig
from agentkit.types import Decision, Frame, ToolCall

Dom = list[dict[str, Any]]
Solver = Callable[["Ctx"], list[ToolCall]]

VIEW_W, VIEW_H = 160.0, 210.0


class Ctx:
    """What a solver sees: the utterance, the DOM and the step number."""

    def __init__(self, utterance: str, dom: Dom, step: int) -> None:
        self.u = utterance
        self.dom = dom
        self.step = step
        self.by_i = {d["i"]: d for d in dom}

    # ------------------------------------------------------------------ queries
    def visible(self) -> Dom:
        return [d for d in self.dom if d["visible"]]

    def find(self, pred: Callable[[dict[str, Any]], bool], visible: bool = True) -> list[dict[str, Any]]:
        return [d for d in self.dom if (d["visible"] or not visible) and pred(d)]

    def first(self, pred: Callable[[dict[str, Any]], bool], visible: bool = True) -> dict[str, Any] | None:
        found = self.find(pred, visible)
        return found[0] if found else None

    def ancestors(self, el: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        p = el["parent"]
        while p >= 0 and p in self.by_i:
            out.append(self.by_i[p])
            p = self.by_i[p]["parent"]
        return out

    def quoted(self) -> list[str]:
        return re.findall(r'"([^"]*)"', self.u)

    def submit(self, label: str = "submit") -> dict[str, Any] | None:
        label = label.lower()
        return self.first(lambda d: d["tag"] in ("button", "div", "input") and d["own"].lower() == label) or self.first(
            lambda d: d["tag"] == "button" and label in d["text"].lower()
        )


def point(el: dict[str, Any], dom: Dom | None = None) -> dict[str, float]:
    """Normalized click point of ``el``: its centre, or the nearest spot not covered by a later element."""
    px, py = el["x"] + el["w"] / 2, el["y"] + el["h"] / 2
    if dom is not None:
        by_i = {d["i"]: d for d in dom}

        def inside(d: dict[str, Any]) -> bool:  # is d a descendant of el?
            p = d["parent"]
            while p >= 0:
                if p == el["i"]:
                    return True
                p = by_i[p]["parent"] if p in by_i else -1
            return False

        covers = [
            d
            for d in dom
            if d["i"] > el["i"] and d["visible"] and d["w"] * d["h"] > 0 and d["tag"] not in ("br",) and not inside(d)
        ]
        grid = [(fx, fy) for fy in (0.5, 0.2, 0.8, 0.35, 0.65, 0.1, 0.9) for fx in (0.5, 0.2, 0.8, 0.35, 0.65)]
        for fx, fy in grid:
            x, y = el["x"] + fx * el["w"], el["y"] + fy * el["h"]
            if not any(d["x"] <= x <= d["x"] + d["w"] and d["y"] <= y <= d["y"] + d["h"] for d in covers):
                px, py = x, y
                break
    x, y = px / VIEW_W, py / VIEW_H
    return {"x": round(min(max(x, 0.0), 1.0), 5), "y": round(min(max(y, 0.0), 1.0), 5)}


# The DOM of the step being solved, so `click` can avoid covered spots (set by MiniWoBOracle.step;
# a ContextVar keeps concurrent oracles in different threads apart).
_CURRENT_DOM: contextvars.ContextVar[Dom | None] = contextvars.ContextVar("miniwob_oracle_dom", default=None)


def click(el: dict[str, Any] | None) -> list[ToolCall]:
    if el is None:
        return []
    return [ToolCall("click", {"point": point(el, _CURRENT_DOM.get())})]


def type_into(el: dict[str, Any] | None, text: str) -> list[ToolCall]:
    return [] if el is None else [*click(el), ToolCall("type", {"text": text})]


# ---------------------------------------------------------------------- solvers
def s_click_button(c: Ctx) -> list[ToolCall]:
    target = c.quoted()[0]
    return click(c.first(lambda d: d["tag"] == "button" and d["own"] == target))


def s_click_button_sequence(c: Ctx) -> list[ToolCall]:
    one = c.first(lambda d: d["tag"] == "button" and d["own"] == "ONE")
    two = c.first(lambda d: d["tag"] == "button" and d["own"] == "TWO")
    return click(one) + click(two)


def s_click_test(c: Ctx) -> list[ToolCall]:
    return click(c.first(lambda d: d["tag"] == "button"))


def s_click_test_2(c: Ctx) -> list[ToolCall]:
    which = re.search(r"button (\w+)", c.u).group(1)  # type: ignore[union-attr]
    return click(c.first(lambda d: d["tag"] == "button" and d["own"] == which))


def s_click_link(c: Ctx) -> list[ToolCall]:
    target = c.quoted()[0]
    return click(c.first(lambda d: "alink" in d["cls"] and d["own"] == target))


def s_click_dialog(c: Ctx) -> list[ToolCall]:
    return click(c.first(lambda d: d["tag"] == "button" and d["own"] == "Close"))


def s_click_dialog_2(c: Ctx) -> list[ToolCall]:
    target = c.quoted()[0]
    if target.lower() == "x":
        return s_click_dialog(c)
    return click(c.first(lambda d: d["tag"] == "button" and d["own"] == target))


def s_click_tab(c: Ctx) -> list[ToolCall]:
    n = re.search(r"Tab #(\d+)", c.u).group(1)  # type: ignore[union-attr]
    return click(c.first(lambda d: d["tag"] == "a" and d["own"] == f"Tab #{n}"))


def s_click_tab_2(c: Ctx) -> list[ToolCall]:
    target = c.quoted()[0]
    link = c.first(lambda d: "alink" in d["cls"] and d["own"] == target)
    if link is not None:
        return click(link)
    hidden = c.first(lambda d: "alink" in d["cls"] and d["own"] == target, visible=False)
    if hidden is None:  # -medium: the link was removed with tab 2's content; clicking tab 2 is the answer
        tabs = c.find(lambda d: d["tag"] == "li" and "ui-tab" in d["cls"])
        return click(tabs[1]) if len(tabs) > 1 else []
    panel = next((a for a in c.ancestors(hidden) if a["id"].startswith("tabs-")), None)
    if panel is None:
        return []
    return click(c.first(lambda d: d["tag"] == "a" and d["href"] == f"#{panel['id']}"))


def _select_words(c: Ctx) -> list[str]:
    m = re.match(r"Select (.*?) and click Submit", c.u)
    if not m or m.group(1) == "nothing":
        return []
    return [w.strip() for w in m.group(1).split(",") if w.strip()]


def _label_input(c: Ctx, word: str) -> dict[str, Any] | None:
    label = c.first(lambda d: d["tag"] == "label" and d["own"] == word)
    if label is None:
        return None
    return c.first(lambda d: d["tag"] == "input" and d["parent"] == label["i"])


def s_click_checkboxes(c: Ctx) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for word in _select_words(c):
        box = _label_input(c, word)
        if box is not None and not box["checked"]:
            calls += click(box)
    return calls + click(c.submit())


def s_click_widget(c: Ctx) -> list[ToolCall]:
    kind = c.quoted()[0]

    def is_kind(d: dict[str, Any]) -> bool:
        if d["tag"] == "input":
            return d["type"] == kind
        return d["tag"] == kind

    return click(c.first(is_kind))


def s_click_collapsible(c: Ctx) -> list[ToolCall]:
    header = c.first(lambda d: d["tag"] == "h3")
    if header is not None and "ui-accordion-header-active" not in header["cls"]:
        return [*click(header), ToolCall("wait", {"seconds": 0.5})]  # let the accordion animation finish
    return click(c.first(lambda d: d["tag"] == "button" and d["own"].lower() == "submit"))


def s_focus_text(c: Ctx) -> list[ToolCall]:
    return click(c.first(lambda d: d["tag"] == "input" and d["type"] == "text"))


def s_focus_text_2(c: Ctx) -> list[ToolCall]:
    n = int(re.search(r"(\d+)(st|nd|rd|th)", c.u).group(1))  # type: ignore[union-attr]
    inputs = c.find(lambda d: d["tag"] == "input" and d["type"] == "text")
    return click(inputs[n - 1]) if len(inputs) >= n else []


def s_enter_text(c: Ctx) -> list[ToolCall]:
    text = c.quoted()[0]
    if "lower case" in c.u:
        text = text.lower()
    elif "upper case" in c.u:
        text = text.upper()
    box = c.first(lambda d: d["tag"] == "input" and d["type"] == "text")
    return type_into(box, text) + click(c.submit())


def s_enter_password(c: Ctx) -> list[ToolCall]:
    pw = c.quoted()[0]
    boxes = c.find(lambda d: d["tag"] == "input" and d["type"] == "password")
    calls: list[ToolCall] = []
    for b in boxes:
        calls += type_into(b, pw)
    return calls + click(c.submit())


def s_login_user(c: Ctx) -> list[ToolCall]:
    user, pw = c.quoted()[:2]
    calls = type_into(c.first(lambda d: d["id"] == "username"), user)
    calls += type_into(c.first(lambda d: d["id"] == "password"), pw)
    return calls + click(c.submit("login"))


def s_unicode_test(c: Ctx) -> list[ToolCall]:
    return s_click_button(c)


def _menu_item(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: "ui-menu-item-wrapper" in d["cls"] and d["own"] == name


def _option(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: d["tag"] == "option" and d["own"] == name


def s_click_menu(c: Ctx) -> list[ToolCall]:
    path = re.search(r"Select (.*)$", c.u).group(1).strip().rstrip(".").split(">")  # type: ignore[union-attr]
    calls: list[ToolCall] = []
    for k, name in enumerate(path):
        item = c.first(_menu_item(name))
        if item is None:
            return calls or [ToolCall("wait", {"seconds": 0.2})]
        if k == len(path) - 1:
            return calls + click(item)
        nxt = path[k + 1]
        shown = c.first(_menu_item(nxt))
        if shown is None:
            return [*calls, ToolCall("move", {"point": point(item)})]
    return calls


def s_click_scroll_list(c: Ctx) -> list[ToolCall]:
    m = re.match(r"Select (.*?) from the scroll list", c.u)
    names = [w.strip() for w in m.group(1).split(", ") if w.strip()] if m else []
    select = c.first(lambda d: d["tag"] == "select")
    if select is None or not names:
        return []
    top, bottom = select["y"], select["y"] + select["h"]
    calls: list[ToolCall] = []
    for k, name in enumerate(names):
        opt = c.first(_option(name))
        if opt is None:
            return []
        if opt.get("selected"):
            continue
        if opt["y"] < top + 1 or opt["y"] + opt["h"] > bottom - 1:
            # scroll the list so the option is inside it, then look again on the next step
            direction = "up" if opt["y"] < top + 1 else "down"
            return [
                *calls,
                ToolCall("scroll", {"point": point(select), "direction": direction, "amount": 1}),
                ToolCall("wait", {"seconds": 0.3}),
            ]
        hold = ["ctrl"] if k > 0 or any(o.get("selected") for o in c.find(lambda d: d["tag"] == "option")) else []
        calls.append(ToolCall("click", {"point": point(opt), "hold": hold}))
        opt["selected"] = True  # for the rest of this plan
        return calls  # one option per step: the next step sees the list as it now is
    return click(c.submit())


def s_scroll_text(c: Ctx) -> list[ToolCall]:
    area = c.first(lambda d: d["tag"] == "textarea")
    if area is None:
        return []
    words = (area["value"] or "").split()
    last = words[-1].strip(".,;:!?") if words else ""
    box = c.first(lambda d: d["tag"] == "input" and d["type"] == "text")
    return type_into(box, last) + click(c.submit())


def s_scroll_text_2(c: Ctx) -> list[ToolCall]:
    area = c.first(lambda d: d["tag"] == "textarea")
    if area is None:
        return []
    direction = "up" if "top" in c.u else "down"
    # Wheel scrolling is asynchronous in Chromium: wait for it before submitting.
    return [
        ToolCall("scroll", {"point": point(area), "direction": direction, "amount": 50}),
        ToolCall("wait", {"seconds": 0.4}),
        *click(c.submit()),
    ]


def s_simple_arithmetic(c: Ctx) -> list[ToolCall]:
    prob = c.first(lambda d: "math-problem" in d["id"] or "math-problem" in d["cls"])
    if prob is None:
        return []
    m = re.match(r"\s*(-?\d+)\s*([-+x*])\s*(-?\d+)", prob["own"])
    if not m:
        return []
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    box = c.first(lambda d: d["tag"] == "input" and d["type"] == "text")
    return type_into(box, str(value)) + click(c.submit())


def s_text_transform(c: Ctx) -> list[ToolCall]:
    box = c.first(lambda d: d["tag"] == "input" and d["type"] == "text")
    if box is None:
        return []
    chars = [d for d in c.visible() if d["tag"] == "span" and len(d["own"]) == 1 and d["y"] < box["y"] and d["y"] > 50]
    chars.sort(key=lambda d: d["x"])
    return type_into(box, "".join(d["own"] for d in chars)) + click(c.submit())


_FIELD_WORDS = {"genre": "genre", "director": "director", "name": "director", "year": "year", "date": "year"}


def _field_of(text: str) -> str | None:
    text = text.lower()
    return next((v for k, v in _FIELD_WORDS.items() if k in text), None)


def s_multi_search(c: Ctx) -> list[ToolCall]:
    m = re.search(r"Search for (.*?) movies directed by (.*?) from year (\d+)", c.u)
    if not m:
        return []
    values = {"genre": m.group(1), "director": m.group(2), "year": m.group(3)}
    calls: list[ToolCall] = []
    visible = c.visible()
    for inp in [d for d in visible if d["tag"] == "input" and d["type"] == "text"]:
        key = _field_of(inp["placeholder"] + " " + inp["name"] + " " + inp["id"])
        for anc in c.ancestors(inp)[:3]:  # the nearest container holding exactly one field label
            if key is not None:
                break
            labels = {
                f
                for d in visible
                if d["own"] and d["tag"] != "input" and anc in c.ancestors(d) and (f := _field_of(d["own"]))
            }
            if len(labels) == 1:
                key = labels.pop()
        if key is not None:
            calls += type_into(inp, values[key])
    sub = c.first(
        lambda d: d["own"].lower() in ("search", "submit", "go!", "go") and d["tag"] in ("button", "div", "a", "span")
    )
    if sub is None:
        buttons = c.find(lambda d: d["tag"] == "button")
        sub = buttons[-1] if buttons else None
    return calls + click(sub)


def s_choose_list(c: Ctx) -> list[ToolCall]:
    m = re.match(r"Select (.*?) from the list and click Submit", c.u)
    select = c.first(lambda d: d["tag"] == "select")
    if not m or select is None:
        return []
    # A focused <select> picks the option whose text is typed (no popup needed in headless Chromium).
    return [
        *click(select),
        ToolCall("key", {"keys": ["Escape"]}),
        ToolCall("type", {"text": m.group(1)}),
        *click(c.submit()),
    ]


def s_use_autocomplete(c: Ctx) -> list[ToolCall]:
    m = re.search(r'Enter an item that starts with "(.*?)"(?: and ends with "(.*?)")?', c.u)
    box = c.first(lambda d: d["tag"] == "input" and d["type"] == "text")
    if not m or box is None:
        return []
    start, end = m.group(1), m.group(2) or ""
    item = c.first(
        lambda d: "ui-menu-item-wrapper" in d["cls"] and d["own"].startswith(start) and d["own"].endswith(end)
    )
    if item is not None:
        return click(item) + click(c.submit())
    if not box["value"]:
        return [*type_into(box, start), ToolCall("wait", {"seconds": 0.3})]
    return [ToolCall("wait", {"seconds": 0.3})]


def s_click_option(c: Ctx) -> list[ToolCall]:
    return s_click_checkboxes(c)


SOLVERS: dict[str, Solver] = {
    "click-button": s_click_button,
    "click-button-sequence": s_click_button_sequence,
    "click-test": s_click_test,
    "click-test-2": s_click_test_2,
    "click-test-transfer": s_click_test_2,
    "click-link": s_click_link,
    "click-dialog": s_click_dialog,
    "click-dialog-2": s_click_dialog_2,
    "click-tab": s_click_tab,
    "click-tab-2": s_click_tab_2,
    "click-tab-2-easy": s_click_tab_2,
    "click-tab-2-medium": s_click_tab_2,
    "click-tab-2-hard": s_click_tab_2,
    "click-checkboxes": s_click_checkboxes,
    "click-checkboxes-large": s_click_checkboxes,
    "click-checkboxes-transfer": s_click_checkboxes,
    "click-option": s_click_option,
    "click-widget": s_click_widget,
    "click-collapsible": s_click_collapsible,
    "click-collapsible-nodelay": s_click_collapsible,
    "click-menu": s_click_menu,
    "click-scroll-list": s_click_scroll_list,
    "focus-text": s_focus_text,
    "focus-text-2": s_focus_text_2,
    "enter-text": s_enter_text,
    "enter-text-2": s_enter_text,
    "enter-text-dynamic": s_enter_text,
    "enter-password": s_enter_password,
    "login-user": s_login_user,
    "unicode-test": s_unicode_test,
    "scroll-text": s_scroll_text,
    "scroll-text-2": s_scroll_text_2,
    "simple-arithmetic": s_simple_arithmetic,
    "text-transform": s_text_transform,
    "multi-layouts": s_multi_search,
    "multi-orderings": s_multi_search,
    "choose-list": s_choose_list,
    "use-autocomplete": s_use_autocomplete,
    "use-autocomplete-nodelay": s_use_autocomplete,
}


class OracleConfig(PolicyConfig):
    """Settings of :class:`MiniWoBOracle`.

    Attributes:
        task: the task whose solver to use when a frame carries none (``Frame.privileged`` names it).
    """

    task: str | None = None


class MiniWoBOracle(Policy):
    """DOM-reading expert for the tasks in :data:`SOLVERS` (privileged: reads ``Frame.privileged``)."""

    name = "miniwob-oracle"
    Config = OracleConfig
    privileged = True

    def __init__(self, config: OracleConfig | None = None, **options: Any) -> None:
        self.config = self.configure(config, options, OracleConfig)
        self.utterance = ""
        self._step = 0

    @staticmethod
    def supported_tasks() -> list[str]:
        return sorted(SOLVERS)

    def reset(self) -> None:
        self._step, self.utterance = 0, ""

    def instruct(self, text: str, pts: float | None = None) -> None:
        self.utterance = text

    def step(self, frame: Frame) -> Decision:
        utterance = str(frame.meta.get("utterance") or self.utterance)
        seen = frame.privileged
        task = getattr(seen, "task", None) or self.config.task
        if task not in SOLVERS:
            return Decision.standby(seq=frame.seq, pts=frame.pts, errors=[f"oracle has no solver for task {task!r}"])
        if not isinstance(seen, MiniWoBPrivileged):
            missing = "oracle needs the page DOM in Frame.privileged"
            return Decision.standby(seq=frame.seq, pts=frame.pts, errors=[missing])
        ctx = Ctx(utterance, seen.dom, self._step)
        self._step += 1
        _CURRENT_DOM.set(ctx.dom)
        try:
            calls = SOLVERS[task](ctx)
        except (AttributeError, IndexError, KeyError, ValueError, TypeError) as e:
            return Decision.standby(seq=frame.seq, pts=frame.pts, errors=[f"oracle: {type(e).__name__}: {e}"])
        if not calls:
            return Decision.standby(seq=frame.seq, pts=frame.pts, errors=["oracle found nothing to do"])
        return Decision.response(seq=frame.seq, pts=frame.pts, tool_calls=calls)
