"""The example app: settings from the environment, backend choice, serve(), the examples module."""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from voicebridge import testing
from voicebridge.app import Settings, create_app, serve
from voicebridge.config import DEFAULT_GREETING, DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent


def test_settings_defaults_and_parsing() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.max_calls, s.openai_api_key, s.openai_model) == ("127.0.0.1", 5050, None, None,
                                                                                DEFAULT_MODEL)
    assert s.greeting == DEFAULT_GREETING and s.uses_local_backend
    s = Settings.from_env({"HOST": "0.0.0.0", "PORT": "8080", "MAX_CALLS": "12", "GREETING": "",
                           "VOICE": "cedar", "OPENAI_MODEL": "gpt-realtime-mini", "PUBLIC_URL": "https://x.io",
                           "OPENAI_API_KEY": "sk-secret", "TWILIO_AUTH_TOKEN": "tok-secret"})
    assert (s.host, s.port, s.max_calls, s.greeting, s.voice) == ("0.0.0.0", 8080, 12, None, "cedar")
    assert not s.uses_local_backend and s.public_url == "https://x.io"
    assert "sk-secret" not in repr(s) and "tok-secret" not in repr(s)


@pytest.mark.parametrize("env", [{"PORT": "http"}, {"PORT": "-1"}, {"MAX_CALLS": "0"}, {"MAX_CALLS": "many"}])
def test_settings_reject_bad_numbers(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)


def test_without_key_the_embedded_backend_runs_a_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(local_mode="tone", local_speed=0))
    bridge = app.extensions["voicebridge"]
    local = bridge.local_server
    assert local is not None and bridge.config.realtime_url == local.url
    assert "EMBEDDED LOCAL" in caplog.text
    handle = serve(app, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"{handle.url}/healthz", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok", "active_calls": 0, "max_calls": None}
        ws = websocket.create_connection(handle.ws_url, timeout=5)
        ws.send(json.dumps(testing.twilio_connected()))
        ws.send(json.dumps(testing.twilio_start()))
        media = 0
        for _ in range(200):  # the greeting: tone frames from the local server, paced by the bridge
            if json.loads(ws.recv()).get("event") == "media":
                media += 1
                if media == 3:
                    break
        assert media == 3
        ws.close()
    finally:
        handle.shutdown()
    assert bridge.local_server is None
    with pytest.raises(RuntimeError):
        local.port  # stopped: no longer listening
    assert "call admitted" in caplog.text and "call end" in caplog.text
    handle.shutdown()  # idempotent


def test_key_selects_openai_and_url_always_overrides(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(openai_api_key="sk-very-secret", twilio_auth_token="tok-very-secret", max_calls=3))
    bridge = app.extensions["voicebridge"]
    assert bridge.local_server is None and bridge.gate.limit == 3 and bridge.signatures.enabled
    assert bridge.config.realtime_url == f"wss://api.openai.com/v1/realtime?model={DEFAULT_MODEL}"
    assert bridge.config.api_key == "sk-very-secret"
    app = create_app(Settings(openai_api_key="sk-very-secret", openai_realtime_url="ws://127.0.0.1:9/rt"))
    assert app.extensions["voicebridge"].config.realtime_url == "ws://127.0.0.1:9/rt"
    app = create_app(Settings(openai_realtime_url="ws://127.0.0.1:9/rt"))
    assert app.extensions["voicebridge"].local_server is None
    assert "sk-very-secret" not in caplog.text and "tok-very-secret" not in caplog.text


def test_azure_settings_from_the_openai_package_variables(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    env = {"AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-very-secret",
           "AZURE_OPENAI_DEPLOYMENT": "rt-prod"}
    settings = Settings.from_env(env)
    assert not settings.uses_local_backend and "az-very-secret" not in repr(settings)
    config = create_app(settings).extensions["voicebridge"].config
    assert config.realtime_url == "wss://contoso.openai.azure.com/openai/v1/realtime?model=rt-prod"
    assert config.api_key == "az-very-secret" and config.is_azure
    dated = create_app(Settings.from_env({**env, "OPENAI_API_VERSION": "2025-08-28"})).extensions["voicebridge"]
    assert dated.config.realtime_url.endswith("/openai/realtime?api-version=2025-08-28&deployment=rt-prod")
    assert "Azure OpenAI https://contoso.openai.azure.com, deployment rt-prod" in caplog.text
    assert "az-very-secret" not in caplog.text


def test_session_options_from_the_environment() -> None:
    s = Settings.from_env({"TURN_DETECTION": "semantic_vad", "VAD_EAGERNESS": "low", "NOISE_REDUCTION": "near_field",
                           "TRANSCRIPTION_LANGUAGE": "es", "SPEED": "1.1", "MAX_OUTPUT_TOKENS": "inf",
                           "TOOL_CHOICE": "required"})
    config = create_app(dataclasses.replace(s, openai_realtime_url="ws://127.0.0.1:9/rt")).extensions["voicebridge"].config
    assert (config.turn_detection, config.vad_eagerness, config.noise_reduction, config.transcription_language,
            config.speed, config.max_output_tokens, config.tool_choice) == ("semantic_vad", "low", "near_field", "es",
                                                                            1.1, None, "required")
    assert Settings.from_env({"TURN_DETECTION": "none"}).session_options == {"turn_detection": None}


@pytest.mark.parametrize("env, message", [
    ({"SPEED": "fast"}, "SPEED has a bad value 'fast'"),
    ({"VAD_EAGERNESS": "high"}, "semantic_vad' only .*from the environment: VAD_EAGERNESS"),
    ({"NOISE_REDUCTION": "studio"}, "noise_reduction must be one of"),
])
def test_bad_session_options_name_their_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_serve_on_a_free_port_and_shutdown() -> None:
    app = create_app(Settings(openai_realtime_url="ws://127.0.0.1:9/rt"))
    with serve(app, "127.0.0.1", 0) as handle:
        assert handle.port > 0 and handle.url == f"http://127.0.0.1:{handle.port}"
        with urllib.request.urlopen(f"{handle.url}/metrics", timeout=5) as resp:
            assert b"voicebridge_active_calls" in resp.read()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{handle.url}/healthz", timeout=1)


def test_example_module_builds_nothing_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("OPENAI_REALTIME_URL", "ws://127.0.0.1:9/rt")
    monkeypatch.setenv("MAX_CALLS", "4")
    sys.modules.pop("examples.twilio_app", None)
    module = importlib.import_module("examples.twilio_app")
    assert not hasattr(module, "app")
    app = module.create_app()
    bridge = app.extensions["voicebridge"]
    assert bridge.gate.limit == 4 and bridge.local_server is None
    assert {r.rule for r in app.url_map.iter_rules()} >= {"/voice", "/media", "/healthz", "/metrics"}


def test_documented_gunicorn_command_serves_a_call_cleanly(tmp_path: Path) -> None:
    """The production command from the README, a whole call, and no error in the server's log
    (a finished media WebSocket must end gunicorn's request quietly, not as a logged 500)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TWILIO_"))}
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "8",
                                 "-b", f"127.0.0.1:{port}", "examples.twilio_app:create_app()"],
                                cwd=root, env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                    assert json.load(resp)["active_calls"] == 0
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-2000:]
                time.sleep(0.2)
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/media", timeout=10)
        ws.send(json.dumps(testing.twilio_connected()))
        ws.send(json.dumps(testing.twilio_start()))
        media = 0
        while media < 3:
            if json.loads(ws.recv()).get("event") == "media":
                media += 1
        ws.send(json.dumps(testing.twilio_stop()))
        opcode = None
        while opcode != websocket.ABNF.OPCODE_CLOSE:
            opcode, _ = ws.recv_data(control_frame=True)
        ws.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if json.load(resp)["active_calls"] == 0:
                    break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(15)
    text = log_path.read_text()
    assert "call end: twilio stop" in text, text[-2000:]
    assert "Traceback" not in text and "Exception on /media" not in text, text[-3000:]


def test_development_server_bounds_idle_and_slow_clients_but_not_calls() -> None:
    """An idle connection or a half-sent request is closed after the read timeout; a media
    stream, once accepted, is not (it lasts as long as the call)."""
    app = create_app(Settings(local_mode="tone", local_speed=0))
    handle = serve(app, "127.0.0.1", 0, read_timeout_s=0.5)
    try:
        idle = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
        t0 = time.monotonic()
        assert idle.recv(1024) == b"" and slow.recv(1024) == b""  # the server hung up on both
        assert time.monotonic() - t0 < 3
        idle.close()
        slow.close()
        ws = websocket.create_connection(handle.ws_url, timeout=5)
        ws.send(json.dumps(testing.twilio_connected()))
        ws.send(json.dumps(testing.twilio_start()))
        time.sleep(1.2)  # longer than the read timeout with nothing sent: a call is not an idle client
        ws.send(json.dumps(testing.twilio_stop()))
        opcode = None
        while opcode != websocket.ABNF.OPCODE_CLOSE:
            opcode, _ = ws.recv_data(control_frame=True)
        ws.close()
        stats = app.extensions["voicebridge"]
        assert wait_for_calls_to_end(stats)
    finally:
        handle.shutdown()


def wait_for_calls_to_end(bridge) -> bool:
    deadline = time.monotonic() + 5
    while bridge.active_calls and time.monotonic() < deadline:
        time.sleep(0.05)
    return bridge.active_calls == 0
