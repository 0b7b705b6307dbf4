"""The wire's guards without a broker: sizes before parsing, finite numbers, strict models, the time window,
image sizes read before decoding, and the login/TLS options."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.mqtt]


def test_json_is_size_checked_before_parsing_and_refuses_non_finite_numbers_and_deep_nesting():
    from agentkit.transport.mqtt.wire import MAX_JSON_BYTES, WireError, loads

    assert loads(b'{"a": [1, 2.5, {"b": null}]}') == {"a": [1, 2.5, {"b": None}]}
    cases = {
        b"x" * (MAX_JSON_BYTES + 1): "too_large",
        b'{"t": NaN}': "invalid",
        b'{"t": -Infinity}': "invalid",
        b'{"t": 1e400}': "invalid",  # parses to inf otherwise
        b'{"a": ' + b"9" * 5000 + b"}": "invalid",  # longer than Python converts
        b"[" * 60000: "invalid",  # recursion
        b'{"a": ' * 9000 + b"1" + b"}" * 9000: "invalid",
        b"\xff\xfe{}": "invalid",
        b"[1, 2]": "invalid",
    }
    for payload, reason in cases.items():
        with pytest.raises(WireError) as e:
            loads(payload)
        assert e.value.reason == reason, (payload[:20], e.value)
        assert len(str(e.value)) < 200  # one short line, never the payload


def test_commands_are_strict_and_closed_reports_strict_and_open():
    from agentkit.transport.mqtt.wire import ActionMsg, ControlMsg, ResultMsg, WireError, parse

    now = time.time()
    ok = {"id": "a-1", "t": now, "call": {"name": "pick", "arguments": {"point": [0.5, 0.5]}}, "frame_seq": 3}
    assert parse(ActionMsg, ok).call.name == "pick"
    bad = [
        {**ok, "t": "1"},  # a string is not a number, even a numeric one
        {**ok, "t": True},
        {**ok, "frame_seq": -1},
        {**ok, "frame_seq": True},
        {**ok, "frame_seq": 2**64},
        {**ok, "id": "a/#"},
        {**ok, "id": "x" * 65},
        {**ok, "id": ""},
        {**ok, "call": {"name": "pick", "arguments": [1]}},
        {**ok, "call": {"name": "../etc", "arguments": {}}},
        {**ok, "extra": 1},  # commands are closed: a typo is an error
        {k: v for k, v in ok.items() if k != "t"},
    ]
    for msg in bad:
        with pytest.raises(WireError):
            parse(ActionMsg, msg)
    assert parse(ControlMsg, {"id": "c", "t": now, "cmd": "reset", "seed": 2**32 - 1}).seed == 2**32 - 1
    for msg in (
        {"id": "c", "t": now, "cmd": "reset", "seed": -1},
        {"id": "c", "t": now, "cmd": "reset", "seed": 1.0},
        {"id": "c", "t": now, "cmd": "state", "seed": 1},  # seed is only for reset
        {"id": "c", "t": now, "cmd": "reset", "sed": 1},
        {"id": "c", "t": now, "cmd": "fly"},
        {"id": "c", "t": now, "cmd": "cancel", "ref": 5},
    ):
        with pytest.raises(WireError):
            parse(ControlMsg, msg)
    # reports ignore fields a newer node adds, but keep the strict types of the known ones
    assert parse(ResultMsg, {"id": "r", "ok": True, "t": now, "new_field": 1}).ok is True
    with pytest.raises(WireError, match="ok: Input should be a valid boolean"):
        parse(ResultMsg, {"id": "r", "ok": "yes", "t": now})
    with pytest.raises(WireError, match="duration_ms"):
        parse(ResultMsg, {"id": "r", "ok": True, "t": now, "duration_ms": -5.0})


def test_rejection_messages_name_the_field_and_never_echo_the_input():
    from agentkit.transport.mqtt.wire import ActionMsg, WireError, parse

    with pytest.raises(WireError) as e:
        parse(ActionMsg, {"id": "a", "t": "SECRET-PAYLOAD", "call": {"name": "home"}})
    assert "t: Input should be a valid number" in str(e.value) and "SECRET" not in str(e.value)


def test_time_window_refuses_stale_and_future_stamps():
    from agentkit.transport.mqtt.wire import WireError, check_time

    check_time(1000.0, 1000.0, 10.0, 5.0)
    check_time(1004.9, 1000.0, 10.0, 5.0)  # within the clock-skew tolerance
    with pytest.raises(WireError, match="from the future") as e:
        check_time(1e12, 1000.0, 10.0, 5.0)
    assert e.value.reason == "future"
    with pytest.raises(WireError, match="stale") as e:
        check_time(980.0, 1000.0, 10.0, 5.0)
    assert e.value.reason == "stale"


def test_freshness_drops_future_frames_and_resyncs_after_a_hijacked_sequence():
    from agentkit.transport.mqtt.wire import Freshness

    f = Freshness(max_age_s=2.0, max_skew_s=5.0, resync_s=1.0)
    now = 1000.0
    assert not f.admit({"session": "a", "seq": 1, "t": now + 60}, now)  # 1 minute ahead
    assert f.admit({"session": "a", "seq": 10**9, "t": now}, now)  # a forged huge seq in the live session
    assert not f.admit({"session": "a", "seq": 2, "t": now + 0.5}, now + 0.5)  # out of order...
    assert f.admit({"session": "a", "seq": 3, "t": now + 1.5}, now + 1.5)  # ... until time says it is new
    assert (f.dropped_future, f.dropped_old, f.resyncs) == (1, 1, 1)


def test_image_size_is_read_from_the_header_before_decoding():
    from agentkit.transport.mqtt.wire import WireError, decode_depth, decode_jpeg, encode_depth, encode_jpeg, image_size

    rgb = np.zeros((24, 32, 3), np.uint8)
    jpeg = encode_jpeg(rgb)
    assert image_size(jpeg) == (32, 24) and decode_jpeg(jpeg, (32, 24)).shape == (24, 32, 3)
    assert image_size(encode_depth(np.ones((5, 7), np.float32))) == (7, 5)
    with pytest.raises(WireError, match="header says"):
        decode_jpeg(jpeg, (320, 240))
    # a 60000 x 60000 JPEG header (a decompression bomb) is refused without allocating 10 GB
    sof = jpeg.index(b"\xff\xc0")
    bomb = jpeg[: sof + 5] + struct.pack(">HH", 60000, 60000) + jpeg[sof + 9 :]
    with pytest.raises(WireError, match="60000x60000 pixels"):
        decode_jpeg(bomb)
    png = bytearray(encode_depth(np.ones((5, 7), np.float32)))
    png[16:24] = struct.pack(">II", 50000, 50000)
    with pytest.raises(WireError, match="50000x50000"):
        decode_depth(bytes(png))
    for junk in (b"", b"\xff\xd8", b"GIF89a" + b"\x00" * 30):
        with pytest.raises(WireError):
            image_size(junk)


def test_mqtts_scheme_and_port_defaults():
    from agentkit.transport.mqtt.wire import parse_spec

    s = parse_spec("mqtts://broker.example/r1")
    assert (s.tls, s.port, s.url) == (True, 8883, "mqtts://broker.example:8883/r1")
    assert parse_spec("mqtt://broker.example/r1").port == 1883
    for bad in ("mqtt://h:0/r1", "mqtt://h:70000/r1", "mqtt://user@h/r1"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_results_that_cannot_be_sent_become_error_results():
    from agentkit.transport.mqtt.wire import dumps

    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    assert json.loads(dumps({"x": np.float32(1.5), "y": np.arange(2)})) == {"x": 1.5, "y": [0, 1]}


# -- login and TLS options -----------------------------------------------------------------------------------
def test_mqtt_auth_reads_the_password_from_a_file_or_the_environment_never_prints_it(tmp_path, monkeypatch):
    from agentkit.errors import ConfigError
    from agentkit.transport.mqtt.auth import MqttAuth
    from agentkit.transport.mqtt.wire import parse_spec

    spec = parse_spec("mqtt://127.0.0.1:1883/r1")
    monkeypatch.delenv("AGENTKIT_MQTT_PASSWORD", raising=False)
    opts = MqttAuth().client_options(spec)
    assert (opts["username"], opts["password"], opts["tls_context"]) == (None, None, None)
    pw = tmp_path / "pw"
    pw.write_text("from-file\nignored\n")
    assert MqttAuth(username="r1", password_file=pw).client_options(spec)["password"] == "from-file"
    monkeypatch.setenv("AGENTKIT_MQTT_PASSWORD", "from-env")
    assert MqttAuth(username="r1").client_options(spec)["password"] == "from-env"
    auth = MqttAuth(username="r1", password="s3cret")
    assert auth.client_options(spec)["password"] == "s3cret"
    assert "s3cret" not in repr(auth) and "s3cret" not in auth.model_dump_json()
    with pytest.raises(ConfigError, match="cannot read"):
        MqttAuth(username="r1", password_file=tmp_path / "missing").client_options(spec)
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        MqttAuth(username="r1", password_file=tmp_path / "empty").client_options(spec)
    with pytest.raises(ConfigError, match="needs a username"):
        MqttAuth(password="x").client_options(spec)
    with pytest.raises(ValueError, match="not both"):
        MqttAuth(username="r1", password="x", password_file=pw)


def test_mqtt_auth_tls_needs_mqtts_and_loadable_files(tmp_path, monkeypatch):
    import ssl

    from agentkit.errors import ConfigError
    from agentkit.transport.mqtt.auth import MqttAuth
    from agentkit.transport.mqtt.wire import parse_spec

    with pytest.raises(ConfigError, match="need an mqtts:// address"):
        MqttAuth(tls_ca=tmp_path / "ca.pem").client_options(parse_spec("mqtt://h/r1"))
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"ca\.pem"):
        MqttAuth(tls_ca=tmp_path / "ca.pem").client_options(parse_spec("mqtts://h/r1"))
    ctx = MqttAuth().client_options(parse_spec("mqtts://h/r1"))["tls_context"]  # system CAs
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    monkeypatch.setenv("AGENTKIT_MQTT_USERNAME", "op")
    monkeypatch.setenv("AGENTKIT_MQTT_TLS_CA", str(tmp_path / "ca.pem"))
    env = MqttAuth.from_env()
    assert env.username == "op" and env.tls_ca == tmp_path / "ca.pem"


def test_cli_mqtt_options_become_one_config_error(tmp_path):
    from typer.testing import CliRunner

    import agentkit.apps.cli.robot  # noqa: F401 - registers the commands
    from agentkit.apps.cli.groups import app

    r = CliRunner().invoke(app, ["robot-node", "--broker", "mqtt://127.0.0.1:1", "--tls-ca", str(tmp_path / "ca")])
    assert r.exit_code == 1 and "need an mqtts:// address" in r.output, r.output
    r = CliRunner().invoke(app, ["robot-node", "--tls-key", str(tmp_path / "k")])
    assert r.exit_code == 1 and "'tls_key' needs 'tls_cert'" in r.output, r.output
    r = CliRunner().invoke(
        app, ["robot-node", "--username", "r1", "--password-file", str(tmp_path / "nope")], env={"AGENTKIT_DEBUG": ""}
    )
    assert r.exit_code == 1 and "--password-file" in r.output and "cannot read" in r.output, r.output
