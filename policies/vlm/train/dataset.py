"""Recordings -> a streaming instruction dataset in Streamo's layout, its statistics, and loading it.

Why: a recording (``--record`` of ``eval miniwob``, ``eval fetch``, ``robot``, ``narrate``...) already holds
what an expert saw and decided, frame by frame: ``frames.mp4`` (frame *i* answers line *i* of
``decisions.jsonl``). :func:`export` turns each recording into one multi-turn dialogue (DESIGN §4): a user
turn per kept frame headed by its stream time, the instruction as a question in the user turn of the frame
it was given on, and an assistant turn holding the expert's state (Silence / Standby / Response), a
Response followed by its tool calls in the canonical text form (Hermes/Qwen ``<tool_call>`` JSON with
normalized ``[x, y]`` points, two decimals). The experts' own states are the labels: the Fetch policies
answer Standby while the robot runs a plan and Response on the frame a plan must be made; the MiniWoB
oracle answers Response on every frame it gets (each frame of a turn-based episode must be acted on); the
detector narrator answers Standby while an event is under way and Response once it is complete.

Frames are kept at a fixed rate of stream time (``fps``, default 2): a frame is kept when it is the first,
when it holds a Response, when the state changes, or when ``1/fps`` seconds have passed since the last kept
frame. Turn-based recordings (one frame per decision) keep every frame.

Layout of an exported dataset folder::

    dialogues.parquet   one row per episode: id, domain, task, seed, split, source, system, instruction,
                        turns (list of {pts, frame, state, answer, question, calls})
    dialogues.jsonl     the same rows, one JSON object per line (for reading and grepping)
    frames/<id>/NNN.png the kept frames, lossless (decoded from the recording's mp4)
    stats.json          counts per state, per task and per split (:func:`stats`)
    datasheet.md        what the data is, where it came from, how it was labeled, and the counts

The system prompt and the stream's first instruction of each dialogue are those the run-time policy sends
(:data:`~agentkit.policies.vlm.tool_policy.TOOL_PROMPTS` for ``gui`` and ``robot``, the engine's defaults
for narration), so a model trained on it is prompted at run time exactly as it was trained.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.parsing import format_tool_call
from agentkit.policies.vlm.config import DEFAULT_INSTRUCTION, DEFAULT_SYSTEM
from agentkit.policies.vlm.tool_policy import PROMPT_STYLES, TOOL_PROMPTS
from agentkit.sinks import read_jsonl
from agentkit.types import ToolCall

STATES = ("silence", "standby", "response")
"""The three decision states, in the order of the state tokens."""
DOMAINS = ("gui", "robot", "narration")
POINT_FORMAT = "showui"
"""How points are written in answers: ``[x, y]`` normalized, two decimals (ShowUI's form)."""


def is_label_point(value: Any) -> bool:
    """Whether a label call's argument is a point: ``{"x": ..., "y": ...}`` in normalized units."""
    return isinstance(value, dict) and set(value) == {"x", "y"}


OUTPUT_NAMES = ("dialogues.parquet", "dialogues.jsonl", "frames", "stats.json", "datasheet.md")


@dataclass
class Turn:
    """One frame of a dialogue: the user turn (frame, stream time, question) and the assistant's state.

    Attributes:
        pts: stream time of the frame (seconds); the user turn's header is ``<{pts}s-{pts+1}s>``.
        frame: the frame's PNG, relative to the dataset folder.
        state: ``silence``, ``standby`` or ``response``.
        answer: a Response's text: its tool calls in the canonical form (and its text where it has no calls).
        question: user text inserted into this frame's user turn (the instruction, when it is given here).
        calls: the Response's tool calls (normalized points), for evaluation.
    """

    pts: float
    frame: str
    state: str
    answer: str = ""
    question: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Dialogue:
    """One episode as a Streamo dialogue (a row of ``dialogues.parquet``)."""

    id: str
    domain: str
    task: str
    seed: int | None
    split: str
    source: str
    system: str
    instruction: str
    turns: list[Turn]

    def to_row(self) -> dict[str, Any]:
        """The parquet / JSONL row (tool calls as a JSON string, so the schema stays fixed)."""
        row = asdict(self)
        row["turns"] = [{**asdict(t), "calls": json.dumps(t.calls)} for t in self.turns]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Dialogue:
        turns = [
            Turn(
                pts=float(t["pts"]),
                frame=str(t["frame"]),
                state=str(t["state"]),
                answer=str(t.get("answer") or ""),
                question=t.get("question") or None,
                calls=json.loads(t["calls"]) if isinstance(t.get("calls"), str) else list(t.get("calls") or []),
            )
            for t in row["turns"]
        ]
        seed = row.get("seed")
        return cls(
            id=str(row["id"]),
            domain=str(row["domain"]),
            task=str(row["task"]),
            seed=None if seed is None else int(seed),
            split=str(row["split"]),
            source=str(row.get("source") or ""),
            system=str(row["system"]),
            instruction=str(row["instruction"]),
            turns=turns,
        )


def prompt_for(domain: str, style: str = "full") -> tuple[str, str]:
    """``(system prompt, first instruction)`` the run-time policy of ``domain`` sends (``style``: how its
    tools are described, :data:`~agentkit.policies.vlm.tool_policy.PROMPT_STYLES`)."""
    if domain in TOOL_PROMPTS:
        p = TOOL_PROMPTS[domain]
        return p.system(style), p.instruction
    if domain == "narration":
        return DEFAULT_SYSTEM, DEFAULT_INSTRUCTION
    raise ConfigError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")


def prompt_style_of(dialogue: Dialogue) -> str | None:
    """The prompt style a dialogue was exported with (``None``: neither, e.g. narration)."""
    for style in PROMPT_STYLES:
        if dialogue.domain in TOOL_PROMPTS and dialogue.system == TOOL_PROMPTS[dialogue.domain].system(style):
            return style
    return None


def answer_text(decision: dict[str, Any], keep_text: bool = False) -> str:
    """A Response's answer in the canonical text form: one ``<tool_call>`` block per call (points ``[x, y]``,
    two decimals), preceded by its free text when it has no calls (or ``keep_text``).

    Example:
        >>> print(answer_text({"kind": "response", "tool_calls": [{"name": "pick",
        ...       "arguments": {"point": {"x": 0.4891, "y": 0.3937}}}]}))
        <tool_call>
        {"name": "pick", "arguments": {"point": [0.49, 0.39]}}
        </tool_call>
    """
    calls = [ToolCall(c["name"], dict(c.get("arguments") or {})) for c in decision.get("tool_calls") or []]
    parts = []
    text = (decision.get("text") or "").strip()
    if text and (keep_text or not calls):
        parts.append(text)
    parts += [format_tool_call(c, POINT_FORMAT) for c in calls]
    return "\n".join(parts)


def select_frames(decisions: Sequence[dict[str, Any]], fps: float | None) -> list[int]:
    """Indices of the frames kept at ``fps`` of stream time (``None``: all): the first, every Response,
    every change of state, and otherwise one frame per ``1/fps`` seconds."""
    kept: list[int] = []
    last_pts = 0.0
    prev_kind = None
    for i, d in enumerate(decisions):
        kind = d.get("kind")
        due = fps is None or float(d.get("pts", 0.0)) - last_pts >= 1.0 / fps - 1e-6
        if not kept or kind == "response" or kind != prev_kind or due:
            kept.append(i)
            last_pts = float(d.get("pts", 0.0))
        prev_kind = kind
    return kept


@dataclass
class Recording:
    """What :func:`export` reads from one recording folder."""

    dir: Path
    meta: dict[str, Any]
    decisions: list[dict[str, Any]]
    domain: str
    task: str
    seed: int | None
    instruction: str  # given at the start of the stream (a question in the first user turn); "" for none
    success: bool | None = None  # whether the run's report says the episode reached its goal (None: no report)


def _domain(meta: dict[str, Any]) -> str:
    if meta.get("benchmark") == "miniwob":
        return "gui"
    if meta.get("benchmark") == "robot" or meta.get("app") == "robot":
        return "robot"
    return "narration"


@functools.lru_cache(maxsize=8)
def _report_rows(report: Path) -> dict[Any, dict[str, Any]]:
    """Seed -> episode row of an ``eval.json`` report (read once per report)."""
    try:
        rows = json.loads(report.read_text()).get("episodes") or []
    except (json.JSONDecodeError, OSError):
        rows = []
    return {row.get("seed"): row for row in rows if isinstance(row, dict)}


def _episode_row(rec_dir: Path, seed: int | None) -> dict[str, Any] | None:
    """The run's own row for this episode: ``episode.json`` (eval miniwob) or the ``eval.json`` report
    beside the recordings (eval fetch); ``None`` for an app's recording."""
    episode = rec_dir / "episode.json"
    if episode.exists():
        row = json.loads(episode.read_text())
        return row if isinstance(row, dict) else None
    report = rec_dir.parent / "eval.json"
    if report.exists():
        return _report_rows(report.resolve()).get(seed)
    return None


def _instruction(meta: dict[str, Any], row: dict[str, Any] | None) -> str:
    """The instruction the runner gave at the start of the stream, from the files the runs write."""
    if meta.get("app") == "robot" and row is None:  # agentkit robot: the task, given at stream time 0
        return str(meta.get("task") or "")
    if row is not None and row.get("instruction") is not None:
        return str(row.get("instruction") or "")
    return str(meta.get("instruction") or "")


def read_recording(rec_dir: str | Path, domain: str | None = None) -> Recording:
    """Read a recording folder (``decisions.jsonl`` + ``frames.mp4`` + ``meta.json``).

    Raises:
        ConfigError: the folder is not a recording with frames.
    """
    d = Path(rec_dir)
    if not (d / "decisions.jsonl").exists() or not (d / "frames.mp4").exists():
        raise ConfigError(f"{d} is not a recording with frames (needs decisions.jsonl and frames.mp4)")
    meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").exists() else {}
    seed = meta.get("seed")
    seed = int(seed) if isinstance(seed, int) else None
    dom = domain or _domain(meta)
    task = str(meta.get("task") if dom == "gui" else meta.get("env") or meta.get("app") or meta.get("task") or dom)
    row = _episode_row(d, seed)
    success = None if row is None or "success" not in row else bool(row["success"])
    return Recording(d, meta, read_jsonl(d / "decisions.jsonl"), dom, task, seed, _instruction(meta, row), success)


def find_recordings(paths: Iterable[str | Path]) -> list[Path]:
    """Recording folders among ``paths`` and below them (a folder with ``decisions.jsonl``), sorted."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"no such recording folder: {p}")
        if (p / "decisions.jsonl").exists():
            found.add(p)
        else:
            found.update(q.parent for q in p.rglob("decisions.jsonl"))
    return sorted(found)


def split_of(dialogue_id: str, test_fraction: float) -> str:
    """``test`` for a stable ``test_fraction`` of ids (by CRC-32 of the id), else ``train``."""
    return "test" if zlib.crc32(dialogue_id.encode()) % 10_000 < round(test_fraction * 10_000) else "train"


def _decode_frames(mp4: Path, wanted: set[int]) -> dict[int, Any]:
    import av

    out: dict[int, Any] = {}
    if not wanted:
        return out
    last = max(wanted)
    with av.open(str(mp4)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return out


def dialogue_from_recording(
    rec: Recording,
    out: Path,
    dialogue_id: str,
    *,
    fps: float | None = 2.0,
    max_turns: int = 32,
    test_fraction: float = 0.1,
    keep_text: bool = False,
    prompt_style: str = "full",
) -> Dialogue | None:
    """One dialogue from a recording, its frames written under ``out/frames/<id>/`` (``None``: no frames)."""
    import cv2

    kept = select_frames(rec.decisions, fps)[:max_turns]
    images = _decode_frames(rec.dir / "frames.mp4", set(kept))
    kept = [i for i in kept if i in images]  # a truncated video ends the dialogue at its last good frame
    if not kept:
        return None
    system, instruction = prompt_for(rec.domain, prompt_style)
    fdir = out / "frames" / dialogue_id
    fdir.mkdir(parents=True, exist_ok=True)
    turns = []
    for k, i in enumerate(kept):
        d = rec.decisions[i]
        rel = f"frames/{dialogue_id}/{k:03d}.png"
        cv2.imwrite(str(out / rel), cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        state = str(d.get("kind", "silence"))
        if state not in STATES:
            raise ConfigError(f"{rec.dir}: decision {i} has an unknown kind {state!r}")
        turns.append(
            Turn(
                pts=round(float(d.get("pts", 0.0)), 4),
                frame=rel,
                state=state,
                answer=answer_text(d, keep_text) if state == "response" else "",
                question=(rec.instruction or None) if k == 0 else None,
                calls=[{"name": c["name"], "arguments": c.get("arguments") or {}} for c in d.get("tool_calls") or []]
                if state == "response"
                else [],
            )
        )
    return Dialogue(
        id=dialogue_id,
        domain=rec.domain,
        task=rec.task,
        seed=rec.seed,
        split=split_of(dialogue_id, test_fraction),
        source=str(rec.dir),
        system=system,
        instruction=instruction,
        turns=turns,
    )


def export(
    recordings: Sequence[str | Path],
    out: str | Path,
    *,
    fps: float | None = 2.0,
    max_turns: int = 32,
    test_fraction: float = 0.1,
    keep_text: bool = False,
    domain: str | None = None,
    prompt_style: str = "full",
    successful_only: bool = False,
    force: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Export recordings (folders, or folders holding recordings) as a dataset folder; returns its stats.

    Args:
        recordings: recording folders or their parents (``eval ... --record DIR`` writes one per episode).
        out: the dataset folder (created; an earlier export there needs ``force``).
        fps: frames kept per second of stream time (``None``: every frame).
        max_turns: longest dialogue; later frames of a long recording are dropped.
        test_fraction: share of episodes held out (chosen by a hash of the episode id, so stable).
        keep_text: keep a Response's free text before its tool calls.
        domain: ``gui`` / ``robot`` / ``narration`` for every recording (default: from each ``meta.json``).
        prompt_style: how the tools are described in the system prompt (``full`` JSON schemas, ``compact``
            one line per tool); the trained checkpoint records it and the run-time policy sends the same.
        successful_only: leave out episodes the run's report marks as failed (a demonstration that failed
            teaches its mistakes); recordings without a report are kept.
        force: replace an earlier export in ``out``.
        on_progress: called with (done, total) after each recording.

    Raises:
        ConfigError: a bad option, no recordings found, or ``out`` holds an earlier export.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agentkit.recorder import check_output_dir, remove_outputs

    if fps is not None and fps <= 0:
        raise ConfigError(f"fps={fps}: must be positive (or None for every frame)")
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test_fraction={test_fraction}: must be in [0, 1)")
    if max_turns < 1:
        raise ConfigError(f"max_turns={max_turns}: must be at least 1")
    if domain is not None and domain not in DOMAINS:
        raise ConfigError(f"domain={domain!r}: must be one of {', '.join(DOMAINS)}")
    if prompt_style not in PROMPT_STYLES:
        raise ConfigError(f"prompt_style={prompt_style!r}: must be one of {', '.join(PROMPT_STYLES)}")
    dirs = find_recordings(recordings)
    if not dirs:
        raise ConfigError(f"no recordings (folders with decisions.jsonl) in {', '.join(map(str, recordings))}")
    out = Path(out)
    remove_outputs(check_output_dir(out, OUTPUT_NAMES, replace=force))
    dialogues: list[Dialogue] = []
    ids: Counter[str] = Counter()
    skipped: list[str] = []
    failed: list[str] = []
    for n, rec_dir in enumerate(dirs, 1):
        rec = read_recording(rec_dir, domain)
        if successful_only and rec.success is False:
            failed.append(str(rec_dir))
            if on_progress is not None:
                on_progress(n, len(dirs))
            continue
        ids[rec_dir.name] += 1
        did = rec_dir.name if ids[rec_dir.name] == 1 else f"{rec_dir.name}-{ids[rec_dir.name]}"
        dlg = dialogue_from_recording(
            rec,
            out,
            did,
            fps=fps,
            max_turns=max_turns,
            test_fraction=test_fraction,
            keep_text=keep_text,
            prompt_style=prompt_style,
        )
        if dlg is None:
            skipped.append(str(rec_dir))
        else:
            dialogues.append(dlg)
        if on_progress is not None:
            on_progress(n, len(dirs))
    if not dialogues:
        raise ConfigError("no recording had a readable frame")
    rows = [d.to_row() for d in dialogues]
    pq.write_table(pa.Table.from_pylist(rows), out / "dialogues.parquet")
    with open(out / "dialogues.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    st = stats(dialogues)
    st["export"] = {
        "recordings": [str(p) for p in recordings],
        "fps": fps,
        "max_turns": max_turns,
        "test_fraction": test_fraction,
        "keep_text": keep_text,
        "prompt_style": prompt_style,
        "point_format": POINT_FORMAT,
        "skipped": skipped,
        "successful_only": successful_only,
        "failed_left_out": failed,
    }
    (out / "stats.json").write_text(json.dumps(st, indent=2))
    (out / "datasheet.md").write_text(datasheet(st))
    return st


def load_dialogues(root: str | Path, split: str | None = None) -> list[Dialogue]:
    """The dialogues of an exported dataset (one ``split``, or all), read with ``datasets``.

    Raises:
        ConfigError: ``root`` is not an exported dataset.
    """
    path = Path(root) / "dialogues.parquet"
    if not path.exists():
        raise ConfigError(
            f"{root} is not an exported dataset (no dialogues.parquet); make one with agentkit data export"
        )
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    ds = Dataset.from_parquet(str(path), keep_in_memory=True)
    if split is not None:
        ds = ds.filter(lambda row: row["split"] == split, keep_in_memory=True)
    return [Dialogue.from_row(row) for row in ds]


def stats(dialogues: Sequence[Dialogue]) -> dict[str, Any]:
    """Counts per state, per split, per task and per tool; the state mix Streamo weighs its loss by."""

    def count(ds: Sequence[Dialogue]) -> dict[str, Any]:
        states = Counter(t.state for d in ds for t in d.turns)
        return {
            "episodes": len(ds),
            "turns": sum(len(d.turns) for d in ds),
            "states": {s: states.get(s, 0) for s in STATES},
        }

    total = count(dialogues)
    n = max(total["turns"], 1)
    calls = Counter(c["name"] for d in dialogues for t in d.turns for c in t.calls)
    tasks = sorted({d.task for d in dialogues})
    return {
        **total,
        "state_fraction": {s: round(c / n, 4) for s, c in total["states"].items()},
        "mean_turns": round(total["turns"] / max(len(dialogues), 1), 2),
        "questions": sum(1 for d in dialogues for t in d.turns if t.question),
        "domains": dict(Counter(d.domain for d in dialogues)),
        "splits": {s: count([d for d in dialogues if d.split == s]) for s in ("train", "test")},
        "tasks": {task: count([d for d in dialogues if d.task == task]) for task in tasks},
        "calls": dict(sorted(calls.items())),
    }


def datasheet(st: dict[str, Any]) -> str:
    """A datasheet (Markdown) for an export's stats: source, labelling, counts per state, split and task."""
    ex = st.get("export", {})
    lines = [
        "# Datasheet",
        "",
        "A streaming instruction dataset in Streamo's layout, exported by `agentkit data export` from agentkit",
        "recordings. One dialogue per episode; one user turn per kept frame (`<Xs-Ys>` + the frame, plus the",
        "instruction in the turn it was given); one assistant turn per frame holding the expert's state, a",
        "Response followed by its tool calls (`<tool_call>` JSON, normalized `[x, y]` points, two decimals).",
        "",
        f"- recordings: {', '.join(ex.get('recordings', [])) or '-'}",
        f"- frames kept per second of stream time: {ex.get('fps') or 'all'}; "
        f"longest dialogue: {ex.get('max_turns')} turns",
        f"- held out: {ex.get('test_fraction')} of the episodes (by a hash of the episode id)",
        f"- system prompt: the run-time policy's, tools described `{ex.get('prompt_style', 'full')}`",
        *(
            [f"- failed episodes left out (`--successful-only`): {len(ex.get('failed_left_out', []))}"]
            if ex.get("successful_only")
            else []
        ),
        f"- domains: {', '.join(f'{k} ({v})' for k, v in st['domains'].items())}",
        "- labels: the experts' own states (Fetch: Response on the frame a plan is made, Standby while the robot",
        "  runs it, Silence when done; MiniWoB++ oracle: Response on every frame of a turn-based episode;",
        "  narrator: Standby while an event is under way, Response when it is complete)",
        "",
        "| split | episodes | turns | silence | standby | response |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in [("all", st), *st["splits"].items()]:
        s = c["states"]
        lines.append(f"| {name} | {c['episodes']} | {c['turns']} | {s['silence']} | {s['standby']} | {s['response']} |")
    lines += ["", "| task | episodes | turns | silence | standby | response |", "|---|---|---|---|---|---|"]
    for task, c in st["tasks"].items():
        s = c["states"]
        lines.append(f"| {task} | {c['episodes']} | {c['turns']} | {s['silence']} | {s['standby']} | {s['response']} |")
    lines += ["", "Tool calls: " + (", ".join(f"{k} {v}" for k, v in st["calls"].items()) or "none"), ""]
    return "\n".join(lines)


__all__ = [
    "DOMAINS",
    "POINT_FORMAT",
    "STATES",
    "Dialogue",
    "Recording",
    "Turn",
    "answer_text",
    "datasheet",
    "dialogue_from_recording",
    "export",
    "find_recordings",
    "is_label_point",
    "load_dialogues",
    "prompt_for",
    "read_recording",
    "select_frames",
    "split_of",
    "stats",
]
