"""The pool worker's cache rebuild (teacher-forced replay) and its settings, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.types import Frame

pytestmark = [pytest.mark.vlm]


def _frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [Frame(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), t=i, pts=float(i), seq=i) for i in range(n)]


def test_replaying_published_decisions_rebuilds_the_owners_cache_exactly(tiny_qwen):
    """A successor that replays the frames with the decisions the owner published holds the owner's cache: same
    tokens, positions and pending turn end, and the same next decision (Silence/Standby: exact)."""
    from agentkit.apps.serve.mqtt_worker import replay_turns
    from agentkit.policies.vlm.loading import load
    from agentkit.policies.vlm.policy import VLMPolicy

    loaded = load(str(tiny_qwen))
    frames = _frames(7)
    owner = VLMPolicy(loaded=loaded, max_new_tokens=4, response_threshold=0.99)
    published = [owner.step(f) for f in frames[:6]]
    assert {d.kind.value for d in published} <= {"silence", "standby"}
    heir = VLMPolicy(loaded=loaded, max_new_tokens=4, response_threshold=0.99)
    assert replay_turns(heir, [(f, d.kind.value, d.text) for f, d in zip(frames[:6], published, strict=True)]) == 6
    assert (len(heir.session), heir.session.next_pos) == (len(owner.session), owner.session.next_pos)
    assert heir.session.slot_seg == owner.session.slot_seg
    a, b = owner.step(frames[6]), heir.step(frames[6])
    assert a.kind == b.kind
    for k, p in a.meta["probs"].items():
        assert b.meta["probs"][k] == pytest.approx(p, abs=1e-5)


def test_a_replayed_response_holds_its_text_and_an_unknown_decision_is_silence(tiny_qwen):
    from agentkit.apps.serve.mqtt_worker import replay_turns
    from agentkit.policies.vlm.loading import load
    from agentkit.policies.vlm.policy import VLMPolicy

    loaded = load(str(tiny_qwen))
    frames = _frames(3)
    silent = VLMPolicy(loaded=loaded)
    replay_turns(silent, [(frames[0], None, None)])
    spoke = VLMPolicy(loaded=loaded)
    replay_turns(spoke, [(frames[0], "response", "A person enters.")])
    text_ids = loaded.adapter.text_ids("A person enters.")
    assert len(spoke.session) == len(silent.session) + 1 + len(text_ids)  # the state token, then the text
    assert spoke.step(frames[1]).kind.value in ("silence", "standby", "response")  # the stream goes on
    odd = VLMPolicy(loaded=loaded)
    replay_turns(odd, [(frames[0], "shout", None)])  # not a decision kind: replayed as Silence
    assert len(odd.session) == len(silent.session) and odd._pending == silent._pending


def test_worker_settings_name_the_bad_field():
    from pydantic import ValidationError

    from agentkit.apps.serve.mqtt_worker import MqttWorkerConfig

    MqttWorkerConfig(broker="mqtt://127.0.0.1:1883", worker_id="w-1")
    with pytest.raises(ValidationError, match="bad worker id"):
        MqttWorkerConfig(broker="mqtt://127.0.0.1:1883", worker_id="w/1")
    with pytest.raises(ValidationError, match="bad MQTT address"):
        MqttWorkerConfig(broker="http://127.0.0.1", worker_id="w1")
    with pytest.raises(ValidationError, match="ring"):
        MqttWorkerConfig(broker="mqtt://127.0.0.1", worker_id="w1", ring=0)


def test_a_decision_claim_far_ahead_of_the_frames_is_held_not_applied():
    """A claim (a decision's seq) beyond the newest frame seen by more than the slack would silence the stream
    (every later frame would look answered): it is held until the frames reach it."""
    from agentkit.apps.serve.mqtt_worker import _Session

    book = _Session()
    book.saw(10, slack=16)
    assert book.claim(9, slack=16) and book.accounted == 9
    assert book.claim(20, slack=16) and book.accounted == 20  # a decision may overtake its frame a little
    assert not book.claim(10**6, slack=16) and book.accounted == 20
    book.saw(30, slack=16)
    assert book.accounted == 20 and book.held == [10**6]
    retained = _Session()  # a retained decision arrives before any frame of its session
    assert not retained.claim(500, slack=16)
    retained.saw(501, slack=16)
    assert retained.accounted == 500 and retained.held == []
