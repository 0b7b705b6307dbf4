"""Held-out metrics of a streaming VLM, measured through the engine's own streaming session.

Why: a checkpoint is only as good as what the engine gets out of it. :func:`evaluate` streams each held-out
dialogue through a :class:`~agentkit.policies.vlm.engine.StreamSession` (the persistent cache the policy
uses): the system turn is prefilled, each frame's user turn is appended in one forward, the state is read
from the logits of the three state tokens exactly as ``VLMPolicy`` reads it, and on every labeled Response
the answer is decoded greedily on the same cache (from a snapshot that is restored afterwards). The
history is teacher-forced (the labeled state and answer are appended after each turn), so each turn is
judged on the stream it would have seen with a perfect past.

Reported: state precision / recall / F1 per class with the confusion matrix (rows: label, columns:
prediction), accuracy and macro F1; on Responses, the point error in normalized units (distance between
each labeled point and the predicted one of the same call and argument), the share of points within
``tol``, tool-call exact match (the canonical text of the predicted calls equals the label's) and match
within ``tol`` (same calls and arguments, every point within ``tol``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agentkit.policies.vlm.adapters.base import Adapter, Chunk
from agentkit.policies.vlm.train.collate import prefix_parts, turn_chunks
from agentkit.policies.vlm.train.dataset import POINT_FORMAT, STATES, Dialogue, is_label_point


def compare_calls(pred: Sequence[Any], label: Sequence[dict[str, Any]], tol: float) -> dict[str, Any]:
    """Compare predicted calls (``ToolCall``) with label calls (dicts): exact, within ``tol``, point errors."""
    from agentkit.parsing import format_tool_call
    from agentkit.types import ToolCall

    lab = [ToolCall(c["name"], dict(c.get("arguments") or {})) for c in label]
    exact = [format_tool_call(c, POINT_FORMAT) for c in pred] == [format_tool_call(c, POINT_FORMAT) for c in lab]
    errors: list[float] = []
    missing = 0
    within = len(pred) == len(lab)
    for i, lc in enumerate(lab):
        pc = pred[i] if i < len(pred) else None
        same = pc is not None and pc.name == lc.name
        within = within and same
        for key, lv in lc.arguments.items():
            pv = pc.arguments.get(key) if same and pc is not None else None
            if is_label_point(lv):
                if pv is not None and is_label_point(pv):
                    err = math.hypot(float(pv["x"]) - float(lv["x"]), float(pv["y"]) - float(lv["y"]))
                    errors.append(err)
                    within = within and err <= tol
                else:
                    missing += 1
                    within = False
            elif pv != lv:
                within = False
        if same and pc is not None and set(pc.arguments) != set(lc.arguments):
            within = False
    return {"exact": exact, "within": within, "errors": errors, "missing": missing}


def state_report(confusion: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 and support per state from a confusion matrix (rows label, columns prediction)."""
    out: dict[str, Any] = {}
    f1s = []
    for i, s in enumerate(STATES):
        tp = float(confusion[i, i])
        pred = float(confusion[:, i].sum())
        sup = float(confusion[i, :].sum())
        p = tp / pred if pred else 0.0
        r = tp / sup if sup else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[s] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "support": int(sup)}
        if sup:
            f1s.append(f1)
    total = float(confusion.sum())
    out["accuracy"] = round(float(np.trace(confusion)) / total, 4) if total else 0.0
    out["macro_f1"] = round(statistics.fmean(f1s), 4) if f1s else 0.0
    out["confusion"] = confusion.astype(int).tolist()
    return out


def evaluate(
    adapter: Adapter,
    dialogues: Sequence[Dialogue],
    load_frame: Callable[[str], np.ndarray],
    state_ids: Sequence[int],
    *,
    tol: float = 0.02,
    max_new_tokens: int = 96,
    responses: bool = True,
) -> dict[str, Any]:
    """Stream held-out dialogues through the engine's session; state and response metrics (module docstring).

    Args:
        adapter: the model's adapter (training or loaded model; it is put in eval mode while measuring).
        dialogues: held-out dialogues.
        load_frame: reads a dialogue's frame path into an RGB array.
        state_ids: the three state-token ids (silence, standby, response).
        tol: point tolerance in normalized units for ``points_within`` and ``calls_within``.
        max_new_tokens: cap of a decoded answer.
        responses: also decode the Responses (point error, call match); ``False``: states only.
    """
    import torch

    from agentkit.parsing import parse_response
    from agentkit.policies.vlm.decode import DecodeConfig, decode
    from agentkit.policies.vlm.engine import StreamSession

    model = adapter.model
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    confusion = np.zeros((3, 3), dtype=np.int64)
    errors: list[float] = []
    n_resp = exact = within = missing = parse_errors = points = 0
    close = adapter.text_ids(adapter.template.turn_close)
    cfg = DecodeConfig(max_new_tokens=max_new_tokens)
    session = StreamSession(adapter)
    sid = torch.tensor(list(state_ids))
    frames = 0
    per_task: dict[str, dict[str, Any]] = {}
    try:
        for d in dialogues:
            task = per_task.setdefault(d.task, {"responses": 0, "calls_within": 0, "errors": []})
            session.reset()
            session.append(prefix_parts(adapter, d), segment=session.new_segment(0.0, pinned=True))
            pending: list[int] = []
            for turn in d.turns:
                chunk = Chunk()
                if pending:
                    chunk.extend(adapter.encode([pending]))
                chunk.extend(turn_chunks(adapter, turn.question, turn.pts, adapter.frame_chunk(load_frame(turn.frame))))
                logits = session.append(chunk, segment=session.new_segment(turn.pts))
                frames += 1
                k = STATES.index(turn.state)
                pred = int(torch.argmax(logits[sid.to(logits.device)].float()).item())
                confusion[k, pred] += 1
                answer = adapter.text_ids(turn.answer) if turn.state == "response" and turn.answer else []
                if turn.state == "response" and responses:
                    snap = session.snapshot()
                    first = session.append([[int(state_ids[2])]])
                    res = decode(session, first, cfg, adapter.eos_ids)
                    session.restore(snap)
                    parsed = parse_response(res.text)
                    parse_errors += bool(parsed.errors)
                    cmp = compare_calls(list(parsed.tool_calls), turn.calls, tol)
                    task["responses"] += 1
                    task["calls_within"] += cmp["within"]
                    task["errors"] += cmp["errors"]
                    n_resp += 1
                    exact += cmp["exact"]
                    within += cmp["within"]
                    missing += cmp["missing"]
                    errors += cmp["errors"]
                    points += len(cmp["errors"]) + cmp["missing"]
                pending = [int(state_ids[k]), *answer, *close]
    finally:
        session.reset()
        model.train(was_training)
    out: dict[str, Any] = {
        "dialogues": len(dialogues),
        "frames": frames,
        "states": state_report(confusion),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if responses:
        arr = np.array(errors) if errors else np.array([np.nan])
        out["responses"] = {
            "n": n_resp,
            "calls_exact": round(exact / n_resp, 4) if n_resp else None,
            "calls_within": round(within / n_resp, 4) if n_resp else None,
            "point_error_mean": round(float(np.nanmean(arr)), 4) if errors else None,
            "point_error_median": round(float(np.nanmedian(arr)), 4) if errors else None,
            "points": points,
            "points_within": round(float(np.sum(arr <= tol)) / points, 4) if points else None,
            "points_missing": missing,
            "parse_errors": parse_errors,
            "tol": tol,
        }
        out["tasks"] = {
            name: {
                "responses": t["responses"],
                "calls_within": round(t["calls_within"] / t["responses"], 4) if t["responses"] else None,
                "point_error_median": round(float(np.median(t["errors"])), 4) if t["errors"] else None,
            }
            for name, t in sorted(per_task.items())
        }
    return out


__all__ = ["compare_calls", "evaluate", "state_report"]
