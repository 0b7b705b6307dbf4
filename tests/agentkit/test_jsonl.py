"""``read_jsonl``: a torn last line (a killed writer) is skipped; a bad line anywhere else is an error."""

from __future__ import annotations

import pytest

from agentkit.errors import AgentkitError
from agentkit.sinks import JsonlError, JsonlWriter, read_jsonl


def _lines(path, *lines: str | bytes) -> None:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))


def test_a_bad_line_mid_file_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "decisions.jsonl"
    _lines(path, '{"seq": 0}', '{"seq": 1}', '{"seq": 2, "kind": "sil', "", '{"seq": 3}')
    with pytest.raises(JsonlError, match=r"decisions\.jsonl:3: not valid JSON") as e:
        read_jsonl(path)  # was: [{"seq": 0}, {"seq": 1}] without a word
    assert isinstance(e.value, AgentkitError)  # the CLI shows it as one line
    assert "\n" not in str(e.value)


def test_a_torn_last_line_is_skipped(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    w = JsonlWriter(path)
    for i in range(3):
        w.write({"seq": i})
    w.close()
    with open(path, "ab") as f:
        f.write('{"seq": 3, "text": "caf\u00e9'.encode()[:-1])  # cut inside a multi-byte character
    assert read_jsonl(path) == [{"seq": 0}, {"seq": 1}, {"seq": 2}]
    assert "d.jsonl:4: skipped a torn last line" in caplog.text
    with open(path, "ab") as f:
        f.write(b"\n\n")  # blank lines after the torn one do not make it a mid-file error
    assert len(read_jsonl(path)) == 3


@pytest.mark.parametrize(
    "bad,expected",
    [(b"[1, 2]", "expected a JSON object, got list"), (b"\xff\xfe{}", "not UTF-8 text"), (b"{nope}", "not valid JSON")],
)
def test_every_kind_of_bad_line_mid_file_is_reported(tmp_path, bad, expected):
    path = tmp_path / "a.jsonl"
    _lines(path, '{"a": 1}', bad, '{"a": 2}')
    with pytest.raises(JsonlError, match=rf"a\.jsonl:2: {expected}"):
        read_jsonl(path)


def test_clean_and_empty_files(tmp_path):
    path = tmp_path / "a.jsonl"
    _lines(path, '{"a": 1}', "", '{"a": 2}')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_bytes(b"")
    assert read_jsonl(path) == []
