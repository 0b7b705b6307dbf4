"""Which messages of a request are new for a stream (no server, no model): the rules clients rely on."""

from __future__ import annotations

import pytest

from agentkit.apps.serve.schemas import Message
from agentkit.apps.serve.sessions import Stream, digest


def msg(role: str, text: str, image: str | None = None) -> Message:
    content: list[dict] = [{"type": "text", "text": text}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": image}})
    return Message.model_validate({"role": role, "content": content})


SYS = digest(msg("system", "watch"))
U = [digest(msg("user", f"t={i}.0s", f"data:image/jpeg;base64,{i}")) for i in range(8)]


def stream(seen: list[str]) -> Stream:
    s = Stream("cam", policy=None)
    s.remember(seen)
    return s


def test_digest_ignores_assistant_echoes_and_depends_on_content() -> None:
    assert digest(msg("user", "a")) != digest(msg("user", "b"))
    assert digest(msg("user", "a", "data:x")) != digest(msg("user", "a", "data:y"))
    assert digest(msg("developer", "watch")) == SYS  # developer is the newer name of system
    assert digest(Message(role="user", content="a")) == digest(msg("user", "a"))  # str == one text part


@pytest.mark.parametrize(
    ("seen", "sent", "has_system", "mode", "expected"),
    [
        ([], [SYS, U[0]], True, "auto", (0, False)),  # a new stream: everything
        ([SYS, U[0], U[1]], [SYS, U[0], U[1], U[2]], True, "auto", (3, False)),  # the whole conversation re-sent
        ([SYS, U[0], U[1]], [SYS, U[0], U[1]], True, "auto", (3, False)),  # nothing new
        ([SYS, *U[:6]], [SYS, U[4], U[5], U[6]], True, "auto", (3, False)),  # compacted: system + tail + new
        ([SYS, *U[:6]], [SYS, U[3], U[4], U[6]], True, "auto", (0, True)),  # a tail that does not end where seen does
        ([SYS, U[0]], [U[1]], False, "auto", (0, False)),  # only the new message (append)
        ([SYS, U[0]], [digest(msg("system", "other")), U[1]], True, "auto", (0, True)),  # another conversation
        ([SYS, U[0]], [SYS, U[1]], True, "append", (0, False)),  # append mode never restarts
        ([SYS, U[0]], [U[1]], False, "conversation", (0, True)),  # conversation mode insists on the prefix
    ],
)
def test_new_messages(seen, sent, has_system, mode, expected) -> None:
    assert stream(seen).new_messages(sent, has_system, mode) == expected


def test_seen_is_bounded_and_keeps_the_prompt() -> None:
    from agentkit.apps.serve import sessions

    s = stream([SYS])
    s.remember([f"{i:064x}" for i in range(sessions.MAX_SEEN + 10)])
    assert len(s.seen) == sessions.MAX_SEEN and s.seen[0] == SYS
