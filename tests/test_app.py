"""The example app: settings from the environment, backend choice, serve(), the examples module."""
from __future__ import annotations

import dataclasses
import http.client
import importlib
import importlib.util
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

from voicebridge import testing
from voicebridge.serving.app import ConfigError, Settings, create_app, serve
from voicebridge.config import DEFAULT_GREETING, DEFAULT_MODEL, BridgeConfig
from voicebridge.dev.local.server import LocalRealtimeServer

ROOT = Path(__file__).resolve().parent.parent


def test_settings_defaults_and_parsing() -> None:
    s = Settings.from_env({"LOCAL_BACKEND": "1"})
    assert (s.host, s.port, s.max_calls, s.openai_api_key, s.openai_model) == ("127.0.0.1", 5050, None, None,
                                                                                DEFAULT_MODEL)
    assert s.greeting == DEFAULT_GREETING and s.uses_local_backend and s.startup_check
    s = Settings.from_env({"HOST": "0.0.0.0", "PORT": "8080", "MAX_CALLS": "12", "GREETING": "",
                           "VOICE": "cedar", "OPENAI_MODEL": "gpt-realtime-mini", "PUBLIC_URL": "https://x.io",
                           "OPENAI_API_KEY": "sk-secret", "TWILIO_AUTH_TOKEN": "tok-secret"})
    assert (s.host, s.port, s.max_calls, s.greeting, s.voice) == ("0.0.0.0", 8080, 12, None, "cedar")
    assert not s.uses_local_backend and s.public_url == "https://x.io"
    assert "sk-secret" not in repr(s) and "tok-secret" not in repr(s)


def test_state_dir_and_drain_file_from_the_environment(tmp_path: Path) -> None:
    env = {"VOICEBRIDGE_STATE_DIR": str(tmp_path / "state"), "VOICEBRIDGE_DRAIN_FILE": str(tmp_path / "drain"),
           "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/rt", "MAX_CALLS": "3", "STARTUP_CHECK": "0"}
    bridge = create_app(Settings.from_env(env)).extensions["voicebridge"]
    assert bridge.state_dir == env["VOICEBRIDGE_STATE_DIR"] and bridge.drain_file == env["VOICEBRIDGE_DRAIN_FILE"]
    assert bridge.drain_grace_s == 30.0
    assert create_app(Settings.from_env(dict(env, DRAIN_GRACE_S="5"))).extensions["voicebridge"].drain_grace_s == 5.0
    assert bridge.slots.shared and (tmp_path / "state" / "slots").is_dir() and not bridge.draining
    (tmp_path / "drain").touch()
    bridge._drain._next_check = 0.0  # the next look is due now
    assert bridge.draining


@pytest.mark.parametrize("env", [{"PORT": "http"}, {"PORT": "-1"}, {"PORT": "70000"}, {"MAX_CALLS": "0"},
                                 {"MAX_CALLS": "many"}, {"DRAIN_GRACE_S": "-1"}])
def test_settings_reject_bad_numbers(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)


def test_without_key_the_embedded_backend_runs_a_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(local_backend=True, local_mode="tone", local_speed=0))
    bridge = app.extensions["voicebridge"]
    local = bridge.local_server
    assert local is not None and bridge.config.realtime_url == local.url
    assert "EMBEDDED LOCAL" in caplog.text
    handle = serve(app, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"{handle.url}/healthz", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok", "active_calls": 0, "active_calls_all": 0, "max_calls": None}
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
    assert bridge.local_server is None and bridge.slots.limit == 3 and bridge.signatures.enabled
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
           "AZURE_OPENAI_DEPLOYMENT": "rt-prod", "STARTUP_CHECK": "0"}
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
                           "TOOL_CHOICE": "required", "APPEND_MS": "40", "LEAD_MS": "200",
                           "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/rt"})
    config = create_app(dataclasses.replace(s, startup_check=False)).extensions["voicebridge"].config
    assert (config.turn_detection, config.vad_eagerness, config.noise_reduction, config.transcription_language,
            config.speed, config.max_output_tokens, config.tool_choice) == ("semantic_vad", "low", "near_field", "es",
                                                                            1.1, None, "required")
    assert config.append_ms == 40 and (config.lead_ms, config.lead_frames) == (200, 10)
    assert Settings.from_env({"TURN_DETECTION": "none", "LOCAL_BACKEND": "1"}).session_options == {"turn_detection": None}


@pytest.mark.parametrize("env, message", [
    ({"SPEED": "fast"}, "SPEED has a bad value 'fast'"),
    ({"VAD_EAGERNESS": "high"}, "semantic_vad' only .*from the environment: VAD_EAGERNESS"),
    ({"NOISE_REDUCTION": "studio"}, "noise_reduction must be one of"),
    ({"APPEND_MS": "30"}, "append_ms must be a multiple of 20"),
    ({"LEAD_MS": "50"}, "lead_ms must be a multiple of 20"),  # (was rounded to 40, silently)
    ({"LEAD_MS": "-100"}, "lead_ms must be a multiple of 20 between 0 and 1000"),  # (was a lead of 0)
    ({"LEAD_MS": "100000"}, "lead_ms must be a multiple of 20 between 0 and 1000"),  # (100 s sent ahead)
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
    monkeypatch.setenv("STARTUP_CHECK", "0")
    sys.modules.pop("examples.twilio_app", None)
    module = importlib.import_module("examples.twilio_app")
    assert not hasattr(module, "app")
    app = module.create_app()
    bridge = app.extensions["voicebridge"]
    assert bridge.slots.limit == 4 and bridge.local_server is None
    assert {r.rule for r in app.url_map.iter_rules()} >= {"/voice", "/media", "/healthz", "/metrics"}


def test_documented_gunicorn_command_serves_a_call_cleanly(tmp_path: Path) -> None:
    """The production command from the README, a whole call, and no error in the server's log
    (a finished media WebSocket must end gunicorn's request quietly, not as a logged 500)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TWILIO_"))}
    env["LOCAL_BACKEND"] = "1"
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
    app = create_app(Settings(local_backend=True, local_mode="tone", local_speed=0))
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


# ---------------------------------------------------------------------------- gunicorn -c examples/gunicorn.conf.py
WORKER_CLASSES = ["gthread", pytest.param("gevent", marks=pytest.mark.skipif(
    importlib.util.find_spec("gevent") is None, reason="gevent is not installed"))]


class Gunicorn:
    """``gunicorn -c examples/gunicorn.conf.py`` with two workers on a free port; always stopped."""

    def __init__(self, tmp_path: Path, worker_class: str, *args: str, port: int = 0, **env: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = port or probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "gunicorn.log"
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("OPENAI_", "TWILIO_", "VOICEBRIDGE_", "PROMETHEUS_"))
                 and k not in ("WEB_CONCURRENCY", "WORKER_CLASS", "MAX_CALLS", "THREADS", "GRACEFUL_TIMEOUT")}
        clean.update(HOST="127.0.0.1", PORT=str(self.port), WEB_CONCURRENCY="2", WORKER_CLASS=worker_class,
                     GRACEFUL_TIMEOUT="30", LOCAL_BACKEND="1", **env)
        import gunicorn

        if tuple(int(p) for p in gunicorn.__version__.split(".")[:2]) >= (25, 1):
            args += ("--no-control-socket",)  # several gunicorns of one user would share its default path
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn.conf.py", *args,
                                          "examples.twilio_app:create_app()"],
                                         cwd=ROOT, env=clean, stdout=log, stderr=log)

    def __enter__(self) -> "Gunicorn":
        try:
            deadline = time.monotonic() + 30
            # every worker loaded and its SIGTERM handler in place (a worker still booting when
            # SIGTERM comes simply exits: it holds no call, but it never logs a drain)
            while len(self.lines("ready: SIGTERM drains its calls")) < 2 or not self.healthy():
                assert time.monotonic() < deadline and self.proc.poll() is None, self.log()[-3000:]
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()

    def worker_pids(self) -> list[int]:
        return [int(line.rsplit(" ", 1)[1]) for line in self.log().splitlines() if "Booting worker with pid:" in line]

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log().splitlines() if text in line]

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL for the master and its workers if need be."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.worker_pids():  # workers orphaned by a killed master
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def open_call(port: int, frames: int = 3) -> websocket.WebSocket:
    """A media stream that has started and heard ``frames`` frames of the greeting."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/media", timeout=10)
    ws.send(json.dumps(testing.twilio_connected()))
    ws.send(json.dumps(testing.twilio_start()))
    media = 0
    while media < frames:
        if json.loads(ws.recv()).get("event") == "media":
            media += 1
    return ws


def end_call(ws: websocket.WebSocket) -> int | None:
    """Twilio's ``stop``, then everything until the bridge's close frame: its close code."""
    ws.send(json.dumps(testing.twilio_stop()))
    for _ in range(10_000):
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.close()
            return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    raise AssertionError("no close frame")


def voice_webhook(conn: "http.client.HTTPConnection") -> ET.Element:
    body = "CallSid=CA" + "7" * 32 + "&From=%2B15550001111"
    conn.request("POST", "/voice", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    assert resp.status == 200
    return ET.fromstring(resp.read())


def test_gunicorn_conf_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    def load(**env: str) -> dict:
        for name in ("WEB_CONCURRENCY", "WORKER_CLASS", "MAX_CALLS", "THREADS", "GRACEFUL_TIMEOUT", "HOST", "PORT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(ROOT / "examples" / "gunicorn.conf.py"))

    conf = load()
    assert conf["workers"] == len(os.sched_getaffinity(0)) and conf["worker_class"] == "gthread"
    assert conf["threads"] == 64 and conf["graceful_timeout"] == 3600 and conf["bind"] == ["127.0.0.1:5050"]
    assert conf["preload_app"] is False
    conf = load(WEB_CONCURRENCY="4", MAX_CALLS="100", HOST="0.0.0.0", PORT="8080", GRACEFUL_TIMEOUT="900")
    assert (conf["workers"], conf["threads"], conf["bind"], conf["graceful_timeout"]) == (4, 33, ["0.0.0.0:8080"], 900)
    assert load(MAX_CALLS="10", WEB_CONCURRENCY="2")["threads"] == 13  # 5 each + at least 8 for the rest
    assert load(THREADS="7")["threads"] == 7
    gevent = load(WORKER_CLASS="gevent")
    assert gevent["worker_class"] == "gevent" and "threads" not in gevent
    for bad in ({"WORKER_CLASS": "sync"}, {"WEB_CONCURRENCY": "many"}, {"PORT": "-1"}):
        with pytest.raises(SystemExit, match=f"^error: {next(iter(bad))}"):  # one line, no traceback
            load(**bad)


def test_gunicorn_conf_puts_its_directories_where_temp_cleaners_do_not_age_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    conf = runpy.run_path(str(ROOT / "examples" / "gunicorn.conf.py"))
    server = type("Server", (), {"log": logging.getLogger("gunicorn-test")})()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    for variable, value in (("RUNTIME_DIRECTORY", str(runtime)), ("XDG_RUNTIME_DIR", str(runtime)),
                            ("RUNTIME_DIRECTORY", str(tmp_path / "missing"))):
        monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        monkeypatch.delenv("VOICEBRIDGE_STATE_DIR", raising=False)
        monkeypatch.setenv(variable, value)
        conf["on_starting"](server)
        made = [Path(os.environ[name]) for name in ("PROMETHEUS_MULTIPROC_DIR", "VOICEBRIDGE_STATE_DIR")]
        try:
            expected = runtime if Path(value).is_dir() else Path(tempfile.gettempdir())
            assert [path.parent for path in made] == [expected, expected]
            assert all(stat.S_IMODE(path.stat().st_mode) == 0o700 for path in made)
        finally:
            conf["on_exit"](server)
        assert not any(path.exists() for path in made)


def test_gunicorn_on_a_taken_port_leaves_no_directory_behind(tmp_path: Path) -> None:
    """gunicorn gives up on a port in use without its on_exit hook: the directories its
    on_starting made (metrics, shared state) were left in the temp dir at every such start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = Gunicorn(tmp_path, "gthread", port=taken.getsockname()[1], TMPDIR=str(tmp_path),
                          XDG_RUNTIME_DIR="", RUNTIME_DIRECTORY="")
        try:
            assert server.proc.wait(30) != 0, server.log()[-2000:]
        finally:
            server.stop()
    assert "Connection in use" in server.log() and "VOICEBRIDGE_STATE_DIR=" in server.log()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gunicorn.log"]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_gunicorn_conf_spreads_calls_over_workers_and_metrics_add_up(tmp_path: Path, worker_class: str) -> None:
    """One command, two workers: calls land on both, and /metrics (whichever worker answers)
    counts every call of every worker."""
    with Gunicorn(tmp_path, worker_class) as server:
        placed = 0
        while placed < 24:
            assert end_call(open_call(server.port)) == 1000
            placed += 1
            if placed >= 6:
                deadline = time.monotonic() + 5
                while len(server.lines("call end: twilio stop")) < placed and time.monotonic() < deadline:
                    time.sleep(0.05)
                served_by = {line.split("[")[1].split("]")[0] for line in server.lines("call end: twilio stop")}
                if len(served_by) == 2:
                    break
        assert len(served_by) == 2, "every call landed on one worker"
        for _ in range(3):  # any worker answers with the sum
            with urllib.request.urlopen(f"{server.base}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                      for family in text_string_to_metric_families(text) for s in family.samples}
            assert values[("voicebridge_calls_total", ())] == placed
            assert values[("voicebridge_active_calls", ())] == 0
            assert values[("voicebridge_frames_sent_total", ())] >= 3 * placed
        status, health = get_json(f"{server.base}/healthz")
        assert status == 200 and health["active_calls_all"] == 0
    assert server.proc.returncode == 0
    text = server.log()
    assert "Traceback" not in text and "Exception on /media" not in text, text[-3000:]
    assert "PROMETHEUS_MULTIPROC_DIR=" in text and "VOICEBRIDGE_STATE_DIR=" in text
    made = [line.split("=", 1)[1] for line in text.splitlines() if "_DIR=" in line and "[INFO]" in line]
    assert len(made) == 2 and not any(os.path.exists(path) for path in made)  # removed at exit


def test_gunicorn_drain_file_keeps_answered_calls_and_sigterm_waits_for_the_live_ones(tmp_path: Path) -> None:
    """A rolling deploy: the drain file turns /healthz 503 on both workers while a live call goes
    on; webhooks still arriving in the preStop window are answered normally and their streams
    admitted; after the grace (DRAIN_GRACE_S) new calls are refused; SIGTERM then waits for the
    live calls to end before gunicorn exits."""
    drain = tmp_path / "drain"
    with Gunicorn(tmp_path, "gthread", VOICEBRIDGE_DRAIN_FILE=str(drain), DRAIN_GRACE_S="3") as server:
        live = open_call(server.port)
        drain.touch()
        time.sleep(1.2)  # each worker looks for the file at most once a second
        answered = []
        for _ in range(4):  # whichever worker answers
            status, health = get_json(f"{server.base}/healthz")
            assert status == 503 and health["status"] == "draining"
            assert health["max_calls"] is None
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            assert voice_webhook(conn).find("Connect/Stream") is not None  # in the grace: answered
            conn.close()
        answered.append(open_call(server.port))  # and its stream admitted
        # past the grace (a worker's starts when it first sees the drain file), every webhook refused
        refused, deadline = 0, time.monotonic() + 10
        while refused < 4:  # in a row, whichever worker answers
            assert time.monotonic() < deadline, server.log()[-3000:]
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            refused = refused + 1 if voice_webhook(conn).find("Hangup") is not None else 0
            conn.close()
            time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.proc.poll() is None  # waiting for the live calls
        for call in (live, *answered):
            call.send(json.dumps(testing.twilio_media(b"\xff" * 160)))
            assert end_call(call) == 1000
        t_end = time.monotonic()
        assert server.proc.wait(15) == 0
        assert time.monotonic() - t_end < 10
    text = server.log()
    assert len(server.lines("call end: twilio stop")) == 2 and "server shutdown" not in text
    # once per worker that saw a request after the file appeared (the kernel may hand them all to one)
    assert 1 <= len(server.lines("drain file")) <= 2 and "Traceback" not in text, text[-3000:]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_gunicorn_sigterm_drains_every_worker_and_never_cuts_the_live_call(tmp_path: Path,
                                                                           worker_class: str) -> None:
    with Gunicorn(tmp_path, worker_class, "--keep-alive", "10") as server:
        live = open_call(server.port)
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read()  # a kept-alive connection: how a request can still arrive
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while len(server.lines("draining: no new calls")) < 2:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.02)
        answered = voice_webhook(kept)  # the worker holding it drains, in its grace: answered normally
        kept.close()
        assert answered.find("Connect/Stream") is not None
        time.sleep(1.0)
        assert server.proc.poll() is None  # still serving the live call
        live.send(json.dumps(testing.twilio_media(b"\xff" * 160)))
        assert end_call(live) == 1000
        assert server.proc.wait(15) == 0
    text = server.log()
    assert len(server.lines("call end: twilio stop")) == 1 and "server shutdown" not in text
    assert "Traceback" not in text, text[-3000:]


# ---------------------------------------------------------------------------- issue 23: no silent demo agent, errors at startup
def test_without_a_backend_the_app_refuses_to_start_and_says_what_to_set() -> None:
    """No key, no URL, no Azure: not the scripted demo agent answering real callers, but an error."""
    for build in (lambda: Settings.from_env({}), lambda: create_app(Settings())):
        with pytest.raises(ConfigError, match="set OPENAI_API_KEY .*OPENAI_REALTIME_URL.*AZURE_OPENAI_ENDPOINT"
                                              ".*LOCAL_BACKEND=1"):
            build()
    assert Settings.from_env({"LOCAL_BACKEND": "1"}).uses_local_backend
    assert not Settings.from_env({"OPENAI_API_KEY": "sk-x"}).uses_local_backend  # a key never means the demo
    with pytest.raises(ConfigError, match="LOCAL_BACKEND=1 runs the embedded server"):
        Settings.from_env({"LOCAL_BACKEND": "1", "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/rt"})


@pytest.mark.parametrize("env, message", [
    ({"OPENAI_REALTIME_URL": "https://api.openai.com/v1/realtime"}, "not https://: use .wss://api.openai.com/v1/realtime. \\(from OPENAI_REALTIME_URL\\)"),
    ({"OPENAI_API_KEY": "sk-x", "VOICE": "robot"}, "voice must be one of .*from VOICE"),
    ({"OPENAI_API_KEY": "sk-x", "TRANSFER_TO": "support desk"}, "from TRANSFER_TO"),
    ({"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "d"}, "AZURE_OPENAI_API_KEY"),
])
def test_bad_settings_are_one_config_error_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


def test_the_example_prints_one_line_for_a_bad_setting_and_starts_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module("examples.twilio_app")
    started: list[object] = []
    monkeypatch.setattr("voicebridge.dev.local.server.LocalRealtimeServer.start", lambda self: started.append(self))
    cases = [({"LOCAL_BACKEND": "1", "MAX_CALLS": "many"}, "MAX_CALLS"), ({"LOCAL_BACKEND": "1", "SPEED": "9"}, "SPEED"),
             ({}, "OPENAI_API_KEY"), ({"LOCAL_BACKEND": "1", "PORT": "70000"}, "PORT"),
             ({"LOCAL_BACKEND": "1", "PUBLIC_URL": "voice.example.com"}, "PUBLIC_URL")]
    for env, named in cases:
        for name in ("OPENAI_API_KEY", "OPENAI_REALTIME_URL", "AZURE_OPENAI_ENDPOINT", "LOCAL_BACKEND", "MAX_CALLS",
                     "SPEED", "PORT", "PUBLIC_URL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert module.main() == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert named in err
    assert started == []  # validated before the embedded server would start


def test_the_example_on_a_taken_port_says_so_naming_port_and_stops_its_backend(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module("examples.twilio_app")
    for name in ("OPENAI_API_KEY", "OPENAI_REALTIME_URL", "AZURE_OPENAI_ENDPOINT", "PUBLIC_URL", "MAX_CALLS"):
        monkeypatch.delenv(name, raising=False)
    stopped: list[object] = []
    original_stop = LocalRealtimeServer.stop
    monkeypatch.setattr(LocalRealtimeServer, "stop", lambda self: (stopped.append(self), original_stop(self))[1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("LOCAL_BACKEND", "1")
        monkeypatch.setenv("HOST", "127.0.0.1")
        monkeypatch.setenv("PORT", str(port))
        assert module.main() == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"error: cannot listen on 127.0.0.1:{port} (see above): set HOST and PORT"
    assert len(stopped) == 1  # the embedded backend it had started is stopped, not left to the exit


@pytest.mark.parametrize("url", ["voice.example.com", "voice.example.com/voice", "//host", "https://", "https:///voice",
                                 "ftp://host"])
def test_a_public_url_without_scheme_or_host_is_refused_naming_it(url: str) -> None:
    with pytest.raises(ConfigError, match="^PUBLIC_URL must be the base URL") as caught:
        Settings.from_env({"LOCAL_BACKEND": "1", "PUBLIC_URL": url})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("url", "warned"), [
    ("https://host/voice/", True), ("https://host/media", True), ("https://host/telnyx/voice", True),
    ("https://host/voice/after", True), ("HTTPS://Host:8443", False), ("https://[::1]:8443/bridge", False),
    ("wss://host/after-hours", False), ("https://host/voicebridge/", False)])
def test_public_urls_a_proxy_may_need_start_and_a_routes_url_is_warned(url: str, warned: bool,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="voicebridge.serving.app")
    Settings.from_env({"LOCAL_BACKEND": "1", "PUBLIC_URL": url}).warn_public_url()
    assert any("PUBLIC_URL" in r.getMessage() for r in caplog.records) == warned


def test_a_public_url_ending_in_a_route_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="voicebridge.serving.app")
    settings = Settings.from_env({"LOCAL_BACKEND": "1", "PUBLIC_URL": "https://voice.example.com/voice"})
    app = create_app(dataclasses.replace(settings, local_mode="tone", local_speed=0))
    try:
        warned = [r.getMessage() for r in caplog.records if "PUBLIC_URL" in r.getMessage()]
        assert len(warned) == 1 and "ends in /voice" in warned[0], warned
        caplog.clear()
        Settings.from_env({"LOCAL_BACKEND": "1", "PUBLIC_URL": "https://voice.example.com/bridge"}).warn_public_url()
        assert not [r for r in caplog.records if "PUBLIC_URL" in r.getMessage()]
    finally:
        app.extensions["voicebridge"].close()


def test_gunicorn_without_a_backend_stops_with_one_line(tmp_path: Path) -> None:
    """The production command with no backend configured: the worker says what to set, gunicorn stops."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "TWILIO_", "AZURE_", "LOCAL_BACKEND", "VOICEBRIDGE_", "PROMETHEUS_"))}
    env.update(WEB_CONCURRENCY="1", PORT="0")
    proc = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn.conf.py",
                           "examples.twilio_app:create_app()"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "cannot start: no Realtime backend configured: set OPENAI_API_KEY" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_startup_check_fails_fast_with_the_servers_message() -> None:
    from voicebridge.dev.local.server import LocalRealtimeServer

    with LocalRealtimeServer(mode="tone", api_key="sk-right") as local:
        wrong = Settings(openai_api_key="sk-wrong", openai_realtime_url=local.url, startup_check=True)
        with pytest.raises(ConfigError, match=r"refused the session \(HTTP 401: Incorrect API key provided.\); "
                                              "check OPENAI_API_KEY"):
            create_app(wrong)
        missing = dataclasses.replace(wrong, openai_api_key="sk-right",
                                      openai_realtime_url=local.url.replace("/v1/realtime", "/v1/nowhere"))
        with pytest.raises(ConfigError, match="HTTP 404"):
            create_app(missing)
        app = create_app(dataclasses.replace(wrong, openai_api_key="sk-right"))  # accepted: the app starts
        assert app.extensions["voicebridge"].config.api_key == "sk-right"
        assert local.stats()["rejected_auth"] == 1


@pytest.mark.parametrize("url, says", [
    ("wss://api.openai.com/v1/realtime?model=gpt-realtime", "set OPENAI_API_KEY"),
    ("wss://my-res.openai.azure.com/openai/v1/realtime?model=dep", "set OPENAI_API_KEY")])
def test_startup_check_names_a_missing_key_before_dialing_a_hosted_endpoint(url, says) -> None:
    """With no key, the hosted endpoint's refusal would say so, but offline (or behind a proxy)
    the dial only says the host is away: the check names the key first and dials nothing. A key
    given, or a local server (which needs none), is dialed as before."""
    from voicebridge.model.preflight import PreflightFailed, preflight

    dialed = []

    def connect(config):
        dialed.append(config.realtime_url)
        return _Created()

    with pytest.raises(PreflightFailed, match=f"no API key for the Realtime endpoint .*: {says}"):
        preflight(BridgeConfig(openai_url=url), connect)
    with pytest.raises(PreflightFailed, match="set AZURE_OPENAI_API_KEY"):  # (the app's key for its Azure variables)
        preflight(BridgeConfig(azure_endpoint="https://my-res.openai.azure.com", azure_deployment="dep"), connect)
    assert dialed == []
    preflight(BridgeConfig(openai_url=url, api_key="sk-x"), connect)
    preflight(BridgeConfig(openai_url="ws://127.0.0.1:9/v1/realtime"), connect)
    assert dialed == [url, "ws://127.0.0.1:9/v1/realtime"]


@pytest.mark.parametrize("env, says", [
    ({"OPENAI_REALTIME_URL": "wss://api.openai.com/v1/realtime?model=gpt-realtime"}, "set OPENAI_API_KEY"),
    ({"OPENAI_REALTIME_URL": "wss://my-res.openai.azure.com/openai/v1/realtime?model=dep"},
     r"set OPENAI_API_KEY \(api_key, or a token_provider\)")])  # (the app's key for any URL given)
def test_a_hosted_endpoint_with_no_key_is_refused_with_the_startup_check_off_too(env, says) -> None:
    """OpenAI's and an Azure host with no key are refused alike, naming the variable, whether the
    startup check runs or not: no call could connect (with the check off the app used to start,
    and the library's warning told an env user to edit ``BridgeConfig``). A local URL needs none."""
    for check in ("0", "1"):
        with pytest.raises(ConfigError, match=f"no API key for the Realtime endpoint wss://.*: {says}"):
            Settings.from_env({**env, "STARTUP_CHECK": check}).check()
    Settings.from_env({"OPENAI_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime", "STARTUP_CHECK": "0"}).check()


@pytest.mark.parametrize("url", ["wss://API.OPENAI.COM:443/v1/realtime", "wss://api.openai.com:443/v1/realtime?model=m",
                                 "wss://res.cognitiveservices.azure.com/openai/v1/realtime?model=d",
                                 "wss://RES.OPENAI.AZURE.COM/openai/v1/realtime?model=d"])
def test_a_hosted_endpoint_is_known_by_its_host_whatever_its_case_or_port(url) -> None:
    """(A new user's check, helper-91: these started with no key, the host matched as text.)"""
    with pytest.raises(ConfigError, match="no API key for the Realtime endpoint"):
        Settings.from_env({"OPENAI_REALTIME_URL": url, "STARTUP_CHECK": "0"}).check()
    with pytest.raises(ConfigError, match=r"AZURE_OPENAI_API_KEY goes with AZURE_OPENAI_ENDPOINT"):
        Settings.from_env({"OPENAI_REALTIME_URL": url, "AZURE_OPENAI_API_KEY": "az-k", "STARTUP_CHECK": "0"}).check()
    assert BridgeConfig(openai_url=url, api_key="k").is_azure == ("openai.azure.com" in url.lower())  # (its header)


def test_an_endpoint_that_does_not_answer_stops_the_app_saying_how_to_start_without_the_check() -> None:
    with socket.socket() as probe:  # a port nothing listens on: the dial is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(openai_api_key="sk-x", openai_realtime_url=f"ws://127.0.0.1:{port}/v1/realtime",
                        startup_check=True)
    with pytest.raises(ConfigError, match=r"cannot reach the Realtime endpoint .* \(STARTUP_CHECK=0 starts without"):
        create_app(settings)


class _Created:
    """A Realtime session that says it is created at once."""

    def recv(self, timeout):
        return '{"type": "session.created"}'

    def close(self):
        pass
