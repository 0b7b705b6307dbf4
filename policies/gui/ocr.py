"""A GUI policy that sees only pixels: OCR the screenshot, find the instruction's target, act on its box.

Why this module exists: it is the honest, model-free baseline for GUI grounding. It gets the frame
(RGB pixels) and the instruction text - never the DOM, never element ids - and answers with the same
``click`` / ``type`` tool calls a VLM would, through the same executor. Reading the screen uses
rapidocr (its ONNX detection and recognition models ship inside the ``rapidocr-onnxruntime`` wheel, so
nothing is downloaded); two small OpenCV detectors cover what text cannot name: empty text fields
(white rectangles with a border) and the close "x" icon of a dialog (matched against a drawn X).

Pipeline per frame: instruction -> list of intents (click text / focus a text field / type / click the
close icon) -> OCR lines minus the lines that echo the instruction -> for each intent the best matching
box (exact text, then a word inside a line with its span estimated from character positions, then a
fuzzy match) -> tool calls at the box centres in normalized coordinates.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from agentkit.policy import Policy, PolicyConfig
from agentkit.types import Box, Decision, Frame, ToolCall


@dataclass(frozen=True)
class TextBox:
    """One OCR line: normalized box, text, recognition score."""

    box: Box
    text: str
    score: float


@dataclass(frozen=True)
class Intent:
    """One thing the instruction asks for."""

    kind: str  # click_text | click_link | focus_field | type | click_close | click_button
    target: str = ""
    index: int = 0  # which text field (0-based) for focus_field
    loose: bool = False  # random label strings: fall back to the most similar unclaimed line


_OCR_LOCK = threading.RLock()
_OCR_ENGINE: Any = None


def ocr_engine() -> Any:
    """The process-wide rapidocr engine (loading its ONNX models takes ~1 s, so it is shared)."""
    global _OCR_ENGINE
    with _OCR_LOCK:
        if _OCR_ENGINE is None:
            from rapidocr_onnxruntime import RapidOCR

            _OCR_ENGINE = RapidOCR()
        return _OCR_ENGINE


def read_text(image: np.ndarray) -> list[TextBox]:
    """OCR an RGB image into normalized text boxes, top to bottom."""
    h, w = image.shape[:2]
    with _OCR_LOCK:
        result, _ = ocr_engine()(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = []
    for quad, text, score in result or []:
        xs = [p[0] for p in quad]
        ys = [p[1] for p in quad]
        out.append(TextBox(Box.from_pixels(min(xs), min(ys), max(xs), max(ys), w, h), str(text), float(score)))
    out.sort(key=lambda t: (round(t.box.y1, 2), t.box.x1))
    return out


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).strip().lower()


def _fold(s: str) -> str:
    """Lower case, no spaces, accents removed ("Cancél" -> "cancel") for fuzzy comparison."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", _norm(s)) if not unicodedata.combining(ch))


_CONFUSABLE = str.maketrans({"I": "l", "1": "l", "|": "l", "i": "l", "0": "o", "O": "o"})


def _shape(s: str) -> str:
    """Fold characters OCR confuses (I/l/1, O/0) - for matching the instruction's echo, not targets."""
    return _norm(s.translate(_CONFUSABLE))


def _strip_punct(s: str) -> str:
    return s.strip(" .,;:!?\"'()[]")


# --------------------------------------------------------------------------------------- instruction
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")


def parse_instruction(text: str) -> list[Intent]:
    """Instruction -> intents. Covers the common MiniWoB++/web phrasings; unknown ones click the quoted text."""
    u = " ".join(text.split())
    quoted = re.findall(r'"([^"]*)"', u)
    m = re.match(r'(?:Enter|Type) "(.*?)"(.*?)(?:and )?press (\w+)', u)
    if m:
        value, rest, button = m.group(1), m.group(2), m.group(3)
        if "lower case" in rest:
            value = value.lower()
        elif "upper case" in rest:
            value = value.upper()
        return [Intent("focus_field"), Intent("type", value), Intent("click_text", button)]
    m = re.match(r"Focus into the (?:(\d+)(?:st|nd|rd|th) )?(?:input )?text ?box", u)
    if m:
        return [Intent("focus_field", index=int(m.group(1)) - 1 if m.group(1) else 0)]
    m = re.match(r"Select (.*?) and click (\w+)", u)
    if m:
        words = [] if m.group(1) == "nothing" else [w.strip() for w in m.group(1).split(",") if w.strip()]
        return [*(Intent("click_text", w, loose=True) for w in words), Intent("click_text", m.group(2))]
    m = re.match(r"Click button (\w+), then click button (\w+)", u)
    if m:
        return [Intent("click_text", m.group(1)), Intent("click_text", m.group(2))]
    m = re.match(r"Click button (\w+)\.?$", u)
    if m:
        return [Intent("click_text", m.group(1))]
    if re.match(r"Click (?:on )?the button\.?$", u):
        return [Intent("click_button")]
    m = re.match(r"Click on (Tab #\d+)", u)
    if m:
        return [Intent("click_text", m.group(1))]
    if re.search(r'clicking the "x"|close (?:the )?dialog', u, re.I) or (quoted and quoted[0].lower() == "x"):
        return [Intent("click_close")]
    if re.search(r"\blink\b", u) and quoted:
        return [Intent("click_link", quoted[0])]
    if quoted:
        return [Intent("click_text", quoted[0])]
    return []


# --------------------------------------------------------------------------------------- grounding
def _echo_of_instruction(tb: TextBox, utterance: str, targets: tuple[str, ...] = ()) -> bool:
    """Whether an OCR line is (part of) the instruction itself rather than a target on the page."""
    if any(_shape(_strip_punct(tb.text)) == _shape(_strip_punct(x)) for x in targets):
        return False  # a line that reads as one of the targets is a target, even if the instruction names it
    t, u = _shape(tb.text), _shape(utterance)
    if len(t) >= 4 and t in u:
        return True
    return len(t) >= 8 and difflib.SequenceMatcher(None, t, u).find_longest_match(
        0, len(t), 0, len(u)
    ).size >= 0.8 * len(t)


def drop_instruction(boxes: list[TextBox], utterance: str, targets: tuple[str, ...] = ()) -> list[TextBox]:
    """Remove the OCR lines that show the instruction itself (including short wrapped tails like "Submit.")."""
    echo = [b for b in boxes if _echo_of_instruction(b, utterance, targets)]
    if not echo:
        return boxes
    left = min(b.box.x1 for b in echo)
    bottom = max(b.box.y2 for b in echo)
    line_h = max(b.box.y2 - b.box.y1 for b in echo)
    u = _norm(utterance)
    keep = []
    for b in boxes:
        if b in echo:
            continue
        tail = abs(b.box.x1 - left) < 0.03 and b.box.y1 <= bottom + 0.6 * line_h and _norm(b.text) in u
        if not tail:
            keep.append(b)
    return keep


def _token_spans(text: str) -> list[tuple[str, int, int]]:
    """Words of an OCR line with their character spans (splitting also at glued punctuation)."""
    return [(m.group(0), m.start(), m.end()) for m in re.finditer(r"[^\s.,;:!?]+[.,;:!?]?", text)]


def _sub_box(tb: TextBox, start: int, end: int) -> Box:
    n = max(len(tb.text), 1)
    b = tb.box
    x1 = b.x1 + (b.x2 - b.x1) * start / n
    x2 = b.x1 + (b.x2 - b.x1) * end / n
    return Box(x1, b.y1, x2, b.y2, label=tb.text[start:end])


def _blueness(image: np.ndarray, box: Box) -> float:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box.to_pixels(w, h)
    crop = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].astype(np.float32)
    if crop.size == 0:
        return 0.0
    dark = crop.sum(axis=2) < 500  # text pixels, not the background
    if not dark.any():
        return 0.0
    px = crop[dark]
    return float((px[:, 2] - px[:, 0]).mean())


def find_text(boxes: list[TextBox], target: str, image: np.ndarray | None = None, link: bool = False) -> Box | None:
    """Best box for ``target``: exact line > word in a line > fuzzy; case-exact preferred; links prefer blue."""
    want = _strip_punct(target)
    cands: list[tuple[float, Box]] = []
    for tb in boxes:
        line = _strip_punct(tb.text)
        if _norm(line) == _norm(want):
            exact_case = line.replace(" ", "") == want.replace(" ", "")
            cands.append((3.0 + exact_case * 0.5 + (tb.text.strip() == target) * 0.25, tb.box))
            continue
        for word, s, e in _token_spans(tb.text):
            w = _strip_punct(word)
            if " " in want or not want:
                continue
            if w.lower() == want.lower():
                cands.append((2.0 + (w == want) * 0.5, _sub_box(tb, s, e)))
                continue
            token_ratio = difflib.SequenceMatcher(None, _fold(w), _fold(want)).ratio()
            if len(want) >= 3 and token_ratio >= 0.7:  # one misread letter ("guis" for an underlined "quis")
                cands.append((1.2 + token_ratio / 2, _sub_box(tb, s, e)))
            elif (
                len(want) >= 3
                and len(w) > len(want)
                and (w.lower().startswith(want.lower()) or w.lower().endswith(want.lower()))
            ):  # OCR dropped a space: "nunctortor" holds "tortor"
                off = s + (0 if w.lower().startswith(want.lower()) else word.lower().rfind(want.lower()))
                cands.append((1.8, _sub_box(tb, off, off + len(want))))
        ratio = difflib.SequenceMatcher(None, _fold(line), _fold(want)).ratio()
        if ratio >= 0.75:
            cands.append((1.0 + ratio / 2, tb.box))
    if not cands:
        return None
    if link and image is not None:
        cands = [(score + (1.5 if _blueness(image, box) > 40 else 0.0), box) for score, box in cands]
    cands.sort(key=lambda c: -c[0])
    return cands[0][1]


def _most_similar_unclaimed(boxes: list[TextBox], target: str, targets: tuple[str, ...], used: list[Box]) -> Box | None:
    """OCR misread a random label: take the most similar line no other target and no earlier click claims."""
    best: tuple[float, Box] | None = None
    for tb in boxes:
        if any(tb.box.iou(u) > 0.3 for u in used):
            continue
        if any(find_text([tb], t) is not None for t in targets if t != target):
            continue
        ratio = difflib.SequenceMatcher(None, _norm(tb.text), _norm(target)).ratio()
        if ratio >= 0.3 and (best is None or ratio > best[0]):
            best = (ratio, tb.box)
    return best[1] if best else None


def find_text_fields(image: np.ndarray) -> list[Box]:
    """Empty text inputs: bordered rectangles, wider than tall, with a plain white inside. Top to bottom."""
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[int, int, int, int]] = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if bh < 0.04 * h * 0.5 or bh > 0.2 * h or bw < 2.2 * bh or bw < 0.15 * w:
            continue
        pad = max(3, bh // 6)
        inner = image[y + pad : y + bh - pad, x + pad : x + bw - pad]
        if inner.size == 0 or inner.mean() < 245 or inner.std() > 12:
            continue
        if any(abs(x - fx) < 8 and abs(y - fy) < 8 for fx, fy, _, _ in found):
            continue
        found.append((x, y, bw, bh))
    found.sort(key=lambda r: (r[1], r[0]))
    return [Box.from_pixels(x, y, x + bw, y + bh, w, h) for x, y, bw, bh in found]


def find_buttons(image: np.ndarray) -> list[Box]:
    """Push buttons: bordered rectangles filled with the light grey of a default button. Largest first."""
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    face = ((gray >= 225) & (gray <= 243)).astype(np.uint8)  # default button face (#efefef) vs white page
    mask = cv2.morphologyEx(face, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if bw < 0.06 * w or bh < 0.03 * h or bw > 0.95 * w or bh > 0.5 * h:
            continue
        if cv2.contourArea(c) < 0.7 * bw * bh:  # not a filled rectangle
            continue
        found.append((bw * bh, Box.from_pixels(x, y, x + bw, y + bh, w, h, label="button")))
    found.sort(key=lambda f: -f[0])
    return [b for _, b in found]


def _x_template(size: int) -> np.ndarray:
    t = np.full((size, size), 255, np.uint8)
    th = max(2, size // 5)
    m = size // 6
    cv2.line(t, (m, m), (size - 1 - m, size - 1 - m), 60, th, cv2.LINE_AA)
    cv2.line(t, (size - 1 - m, m), (m, size - 1 - m), 60, th, cv2.LINE_AA)
    return t


def find_close_icon(image: np.ndarray) -> Box | None:
    """A dialog's close "x" icon (multi-scale match against a drawn thick X)."""
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    best: tuple[float, int, int, int] | None = None
    for size in range(max(8, w // 40), max(12, w // 6), 2):
        res = cv2.matchTemplate(gray, _x_template(size), cv2.TM_CCOEFF_NORMED)
        _, score, _, loc = cv2.minMaxLoc(res)
        if best is None or score > best[0]:
            best = (score, loc[0], loc[1], size)
    if best is None or best[0] < 0.55:
        return None
    _, x, y, s = best
    return Box.from_pixels(x, y, x + s, y + s, w, h, label="x", score=best[0])


# --------------------------------------------------------------------------------------- policy
class OcrConfig(PolicyConfig):
    """Settings of :class:`OcrGuiPolicy`.

    Attributes:
        max_attempts: frames to retry on when a target is not found before giving up (standby).
    """

    max_attempts: int = Field(3, ge=1)


class OcrGuiPolicy(Policy):
    """Pixels-only GUI policy: OCR grounding of the instruction's targets.

    Args:
        max_attempts: Frames to retry on when a target is not found before giving up (standby).
    """

    name = "ocr"
    Config = OcrConfig

    def __init__(self, config: OcrConfig | None = None, **options: Any) -> None:
        self.config = self.configure(config, options, OcrConfig)
        self.max_attempts = self.config.max_attempts
        self.instruction = ""
        self._acted_for: str | None = None
        self._attempts = 0

    def reset(self) -> None:
        self.instruction, self._acted_for, self._attempts = "", None, 0

    def instruct(self, text: str, pts: float | None = None) -> None:
        if text != self.instruction:
            self.instruction, self._acted_for, self._attempts = text, None, 0

    def plan(self, image: np.ndarray, instruction: str) -> tuple[list[ToolCall], list[Box], list[str]]:
        """Ground every intent of ``instruction`` on ``image``: (tool calls, boxes used, errors)."""
        intents = parse_instruction(instruction)
        if not intents:
            return [], [], [f"ocr: cannot parse instruction {instruction!r}"]
        needs_ocr = any(i.kind in ("click_text", "click_link") for i in intents)
        targets = tuple(i.target for i in intents if i.target)
        boxes = drop_instruction(read_text(image), instruction, targets) if needs_ocr else []
        calls: list[ToolCall] = []
        used: list[Box] = []
        errors: list[str] = []
        fields: list[Box] | None = None
        for intent in intents:
            box: Box | None = None
            if intent.kind in ("click_text", "click_link"):
                box = find_text(boxes, intent.target, image, link=intent.kind == "click_link")
                if box is None and intent.loose:
                    box = _most_similar_unclaimed(boxes, intent.target, targets, used)
            elif intent.kind == "focus_field":
                fields = find_text_fields(image) if fields is None else fields
                box = fields[intent.index] if len(fields) > intent.index else None
            elif intent.kind == "click_close":
                box = find_close_icon(image)
            elif intent.kind == "click_button":
                buttons = find_buttons(image)
                box = buttons[0] if buttons else None
            elif intent.kind == "type":
                calls.append(ToolCall("type", {"text": intent.target}))
                continue
            if box is None:
                errors.append(f"ocr: target not found on screen: {intent.kind} {intent.target!r}".rstrip(" '"))
                continue
            used.append(box)
            c = box.center
            calls.append(ToolCall("click", {"point": {"x": round(c.x, 5), "y": round(c.y, 5)}}))
        return calls, used, errors

    def step(self, frame: Frame) -> Decision:
        instruction = str(frame.meta.get("utterance") or self.instruction)
        if instruction != self.instruction:
            self.instruct(instruction)
        if not instruction:
            return Decision.silence(seq=frame.seq, pts=frame.pts)
        if self._acted_for == instruction:
            return Decision.silence(seq=frame.seq, pts=frame.pts)
        t0 = time.perf_counter()
        calls, used, errors = self.plan(frame.image, instruction)
        ms = (time.perf_counter() - t0) * 1e3
        if errors:
            self._attempts += 1
            return Decision.standby(seq=frame.seq, pts=frame.pts, errors=errors, boxes=used, model_ms=ms)
        self._acted_for = instruction
        return Decision.response(seq=frame.seq, pts=frame.pts, tool_calls=calls, boxes=used, model_ms=ms)
