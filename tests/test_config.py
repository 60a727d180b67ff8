"""Session options and connection settings: what goes on the wire, what is refused up front.

Every ``session.update`` variant is checked against the openai package's GA types (no field they
do not know) and accepted by the local engine; Azure's two URL shapes and both of its credentials
are dialed for real against the local server.
"""
from __future__ import annotations

import json

import pytest

from voicebridge import BridgeConfig
from voicebridge.model import client as realtime_client
from voicebridge.model import protocol as rt
from voicebridge.dev.local import LocalRealtimeServer
from voicebridge.dev.local.agent import ScriptedAgent, Voice
from voicebridge.dev.local.engine import RealtimeEngine
from voicebridge.testing import wait_until

from test_tools import assert_client_event

VARIANTS = {
    "semantic": dict(turn_detection="semantic_vad", vad_eagerness="high"),
    "server_interrupts": dict(vad_interrupt_response=True),
    "server_vad": dict(vad_threshold=0.7, vad_prefix_padding_ms=200, vad_silence_duration_ms=400,
                       vad_idle_timeout_ms=6000, vad_create_response=False),
    "no_vad": dict(turn_detection=None),
    "far_field": dict(noise_reduction="far_field", transcription_language="de",
                      transcription_prompt="Bestellnummer, Lieferung"),
    "voice": dict(voice="voice_1234abcd", speed=1.25, max_output_tokens=300),
    "no_transcription": dict(transcription_model=None),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_session_option_is_valid_on_the_wire_and_accepted(name):
    update = rt.session_update(BridgeConfig(**VARIANTS[name]))
    assert_client_event(update)
    engine = RealtimeEngine(ScriptedAgent(Voice(live=False), mode="tone"))
    engine.open(0.0)
    [reply] = engine.handle(update, 0.0)
    assert reply["type"] == "session.updated", reply
    sent = json.loads(update)["session"]["audio"]["input"]["turn_detection"]
    echoed = reply["session"]["audio"]["input"]["turn_detection"]
    assert echoed == sent if sent is None else {k: echoed[k] for k in sent} == sent  # plus the server's defaults


def test_the_options_land_where_the_ga_session_keeps_them():
    session = json.loads(rt.session_update(BridgeConfig(**VARIANTS["semantic"], **VARIANTS["far_field"],
                                                        **VARIANTS["voice"])))["session"]
    audio_in, audio_out = session["audio"]["input"], session["audio"]["output"]
    # create_response is the bridge's (it asks for the answer to a turn itself: a backchannel or the
    # agent's own echo stays unanswered); interrupt_response defaults to false (the bridge cancels)
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "high", "create_response": False,
                                          "interrupt_response": False}
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert audio_in["transcription"] == {"model": BridgeConfig().transcription_model, "language": "de",
                                         "prompt": "Bestellnummer, Lieferung"}
    assert audio_out == {"format": {"type": "audio/pcmu"}, "voice": {"id": "voice_1234abcd"}, "speed": 1.25}
    assert session["max_output_tokens"] == 300
    assert json.loads(rt.session_update(BridgeConfig()))["session"]["max_output_tokens"] == "inf"


@pytest.mark.parametrize("options, message", [
    (dict(voice="robot"), "voice must be one of"),
    (dict(speed=2.0), "speed must be between 0.25 and 1.5"),
    (dict(turn_detection="push_to_talk"), "turn_detection must be one of"),
    (dict(vad_eagerness="high"), "applies to turn_detection='semantic_vad' only"),
    (dict(turn_detection="semantic_vad", vad_eagerness="eager"), "vad_eagerness must be one of"),
    (dict(turn_detection="semantic_vad", vad_idle_timeout_ms=5000), "applies to turn_detection='server_vad' only"),
    (dict(vad_threshold=1.5), "vad_threshold must be between 0 and 1"),
    (dict(vad_silence_duration_ms=-1), "must not be negative"),
    (dict(noise_reduction="studio"), "noise_reduction must be one of"),
    (dict(max_output_tokens=0), "max_output_tokens must be between 1 and 4096"),
    (dict(transcription_model=None, transcription_language="de"), "need a transcription_model"),
    (dict(tool_choice="lookup"), "tool_choice must be one of"),
    (dict(azure_endpoint="contoso.openai.azure.com", azure_deployment="rt"), "must be an https:// URL"),
    (dict(azure_endpoint="https://contoso.openai.azure.com"), "needs azure_deployment"),
    (dict(azure_endpoint="https://c.openai.azure.com", azure_deployment="rt", api_version="2024-10-01-preview"),
     "preview version"),
    (dict(reconnect_attempts=-1), "must not be negative"),
    (dict(turn_detection=None, vad_interrupt_response=True), "vad_interrupt_response applies to"),
    (dict(vad_interrupt_response="yes"), "vad_interrupt_response must be True or False"),
    (dict(ignore_backchannels=1), "ignore_backchannels must be True or False"),
    (dict(barge_in_min_speech_ms=-20), "barge_in_min_speech_ms must be between 0 and 3000"),
])
def test_invalid_settings_are_refused_at_configuration_time(options, message):
    with pytest.raises(ValueError, match=message):
        BridgeConfig(**options)


def test_realtime_urls_for_openai_and_both_azure_shapes():
    assert BridgeConfig(model="gpt-realtime-mini").realtime_url == \
        "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini"
    v1 = BridgeConfig(azure_endpoint="https://contoso.openai.azure.com/", azure_deployment="my rt")
    assert v1.realtime_url == "wss://contoso.openai.azure.com/openai/v1/realtime?model=my%20rt" and v1.is_azure
    dated = v1.replace(api_version="2025-08-28")
    assert dated.realtime_url == \
        "wss://contoso.openai.azure.com/openai/realtime?api-version=2025-08-28&deployment=my%20rt"
    assert BridgeConfig(azure_endpoint="http://127.0.0.1:9", azure_deployment="d").realtime_url.startswith("ws://")
    assert not BridgeConfig(openai_url="ws://127.0.0.1:9/rt").is_azure


def test_credentials_go_in_the_header_each_service_expects():
    assert realtime_client.auth_headers(BridgeConfig(api_key="sk-1")) == ["Authorization: Bearer sk-1"]
    azure = BridgeConfig(api_key="az-1", azure_endpoint="https://c.openai.azure.com", azure_deployment="d")
    assert realtime_client.auth_headers(azure) == ["api-key: az-1"]
    tokens = iter(["t1", "t2"])
    entra = azure.replace(api_key=None, token_provider=lambda: next(tokens))
    assert realtime_client.auth_headers(entra) == ["Authorization: Bearer t1"]
    assert realtime_client.auth_headers(entra) == ["Authorization: Bearer t2"]  # asked again on every dial
    assert "az-1" not in repr(azure) and realtime_client.auth_headers(BridgeConfig()) == []


AZURE_CFG = BridgeConfig(greeting_instructions="Hello", barge_in=False, join_timeout_s=2.0, connect_timeout_s=2.0,
                         azure_deployment="my-realtime", reconnect_backoff_ms=10)


@pytest.mark.parametrize("shape, credential", [("v1", "api-key"), ("dated", "api-key"), ("v1", "token")])
def test_azure_calls_dial_the_local_server_in_each_shape(bridge_call, shape, credential):
    tokens: list[str] = []

    def token() -> str:
        tokens.append("az-secret")
        return tokens[-1]

    with LocalRealtimeServer(mode="tone", speed=20.0, tone_seconds=0.2, api_key="az-secret") as server:
        config = AZURE_CFG.replace(azure_endpoint=server.http_base,
                                   api_version="2025-08-28" if shape == "dated" else None,
                                   api_key="az-secret" if credential == "api-key" else None,
                                   token_provider=token if credential == "token" else None)
        call = bridge_call(config, connect=realtime_client.connect).start()
        call.twilio.echo_marks = True
        assert call.twilio.wait_for(lambda t: len(t.media_frames()) >= 10, timeout=5)  # the greeting plays
        server.drop_connections()  # a reconnect dials the same way, with a fresh token
        assert wait_until(lambda: call.session.metrics["model_lost"] == 1
                          and server.stats()["active_connections"] == 1)
        m = call.finish()
        dials = server.stats()["dials"]
    path = "/openai/realtime" if shape == "dated" else "/openai/v1/realtime"
    assert dials == {f"{path} {'bearer' if credential == 'token' else 'api-key'}": 2}
    assert m["close_reason"] == "twilio stop" and m["accounting_ok"]
    assert len(tokens) == (2 if credential == "token" else 0)


def test_greeting_is_named_for_what_it_takes_the_old_name_still_works():
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        new = BridgeConfig(greeting_instructions="Greet the caller in Spanish.")  # no warning
    with pytest.warns(DeprecationWarning, match="greeting_instructions="):
        old = BridgeConfig(greeting="Greet the caller in Spanish.")
    assert old == new and old.greeting_instructions == "Greet the caller in Spanish."
    with pytest.warns(DeprecationWarning):
        assert BridgeConfig(greeting=None).greeting_instructions is None  # None: the caller speaks first
    assert old.replace(voice="cedar").greeting_instructions == "Greet the caller in Spanish."  # no second warning


def test_every_duration_names_its_unit():
    """The class docstring's promise: a number that is a time says ms or s in its name, in its
    group and in the flat names alike."""
    import dataclasses

    from voicebridge.config import FLAT, GROUPS

    unitless = {"speed", "vad_threshold", "max_output_tokens", "replay_items", "reconnect_attempts", "reconnect_budget",
                "tool_workers", "attempts", "budget"}
    units = ("_ms", "_s", "_frames", "_db", "_dbfs", "_bytes")
    numeric = {(cls.__name__, f.name) for cls in GROUPS.values() for f in dataclasses.fields(cls)
               if any(t in str(f.type) for t in ("int", "float"))}
    names = {name for _, name in numeric} | {flat for flat, (group, member) in FLAT.items()
                                             if (GROUPS[group].__name__, member) in numeric}
    assert len(names) > 40 and sorted(n for n in names - unitless if not n.endswith(units)) == []
    assert "``*_ms`` milliseconds, ``*_s`` seconds" in BridgeConfig.__doc__  # not "timing fields are in milliseconds"


@pytest.mark.parametrize("url, message", [
    ("https://api.openai.com/v1/realtime?model=gpt-realtime", "not https://: use 'wss://api.openai.com/v1/realtime"),
    ("http://127.0.0.1:8765/v1/realtime", "not http://: use 'ws://127.0.0.1:8765/v1/realtime'"),
    ("api.openai.com/v1/realtime", "full ws:// or wss:// URL with a host"),
    ("wss:///v1/realtime", "with a host"),
])
def test_openai_url_must_be_a_websocket_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BridgeConfig(openai_url=url)
    assert BridgeConfig(openai_url="wss://x.openai.azure.com/openai/v1/realtime?model=d").is_azure


def test_settings_come_in_groups_and_the_flat_names_still_work() -> None:
    from voicebridge.config import InterruptionOptions, SessionOptions

    grouped = BridgeConfig(session=SessionOptions(voice="cedar"), interruption=InterruptionOptions(min_speech_ms=400))
    flat = BridgeConfig(voice="cedar", barge_in_min_speech_ms=400)
    assert grouped == flat
    assert (flat.session.voice, flat.interruption.min_speech_ms) == ("cedar", 400)
    assert (grouped.voice, grouped.barge_in_min_speech_ms) == ("cedar", 400)  # the flat reads
    assert BridgeConfig(**{"voice": "sage", "reconnect_attempts": 2}).reconnect.attempts == 2  # a flat mapping
    # a flat name given with its group applies on top of it; replace keeps the rest
    both = BridgeConfig(session=SessionOptions(voice="cedar", speed=1.2), voice="ash")
    assert (both.voice, both.speed) == ("ash", 1.2)
    changed = both.replace(barge_in=False)
    assert (changed.interruption.enabled, changed.barge_in, changed.voice, both.barge_in) == (False, False, "ash", True)


def test_a_bad_setting_is_refused_by_name_and_type() -> None:
    from voicebridge.config import SessionOptions

    with pytest.raises(TypeError, match="unexpected keyword argument 'voise' \\(did you mean 'voice'\\?\\)"):
        BridgeConfig(voise="cedar")
    with pytest.raises(TypeError, match="takes InterruptionOptions, not SessionOptions"):
        BridgeConfig(interruption=SessionOptions())
    with pytest.raises(ValueError, match="voice must be one of"):
        BridgeConfig(session=SessionOptions(voice="robot"))  # checked when the config is made


def test_every_group_member_has_exactly_one_flat_name() -> None:
    import dataclasses

    from voicebridge.config import FLAT, GROUPS

    members = sorted((group, f.name) for group, cls in GROUPS.items() for f in dataclasses.fields(cls))
    assert sorted(FLAT.values()) == members
    assert not set(FLAT) & set(GROUPS)


def test_the_configuration_doc_lists_every_setting_under_its_group() -> None:
    import dataclasses
    import pathlib

    from voicebridge.config import FLAT, GROUPS

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for group, cls in GROUPS.items():
        section = doc.split(f"### `{group}`: `{cls.__name__}`")[1].split("\n### ")[0]
        for f in dataclasses.fields(cls):
            flat = next(name for name, where in FLAT.items() if where == (group, f.name))
            row = f"| `{f.name}` | {'same' if flat == f.name else f'`{flat}`'} |"
            assert row in section, (group, f.name)
            if f.default is not dataclasses.MISSING and f"{row} a sentence" not in section:  # its default too
                assert f"{row} `{f.default!r}` |" in section, (group, f.name, f.default)


@pytest.mark.parametrize("name, value", [("backchannel_commit", "no"), ("duck", 1), ("echo_gate", "false"),
                                         ("backchannel_hold_ms", "3000"), ("backchannel_hold_ms", 3000.5),
                                         ("barge_in_min_speech_ms", True)])
def test_an_on_off_or_whole_millisecond_setting_of_the_wrong_type_is_refused_by_name(name, value):
    """A new user's ``backchannel_commit="no"`` was accepted and, a non-empty string, left it on."""
    with pytest.raises(ValueError, match=name):
        BridgeConfig(**{name: value})
