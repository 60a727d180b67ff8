"""The shared state's two backends behind one interface, and the Redis one across hosts and faults.

Everything here runs against a real ``redis-server`` (the ``redis_server`` fixture: a free port
on 127.0.0.1, no persistence, always stopped); the outage tests stop and start it. Leases are
short (``lease_s`` under a second) so a dead host's slots come back within the test.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis as redis_client
import websocket
from flask import Flask
from twilio.request_validator import RequestValidator

from voicebridge import BridgeConfig, VoiceBridge
from voicebridge.serving.app import ConfigError, Settings, create_app
from voicebridge.serving.redisstate import StoreUnreachable
from voicebridge.serving.sharedstate import SharedState, file_state, open_state
from voicebridge.testing import FakeRealtime, rt_audio_done, rt_function_call, rt_response_done, twilio_mark, wait_until

from benchmarks.fleet_parts import ROOT, start_instances
from peers import ScriptedRealtime, TwilioPeer, audio_response, drain_until_closed, open_session, running, send_event

TOKEN = "test-auth-token-0123456789"
CFG = BridgeConfig(api_key="sk-test", lead_ms=0, transcription_model=None, reconnect_attempts=0)
LEASE_S = 0.6
FORM = {"CallSid": "CA" + "1" * 32, "From": "+15550001111", "To": "+15550002222", "AccountSid": "ACabc"}


# ---------------------------------------------------------------------------- one interface, two backends
@pytest.fixture(params=["file", "redis"])
def states(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., SharedState]]:
    """``states(max_calls)``: a new sharer of one store (the same directory, or the same Redis)."""
    made: list[SharedState] = []
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")

        def make(max_calls: int | None = 2) -> SharedState:
            made.append(open_state(max_calls, None, server.url, lease_s=LEASE_S, prefix="contract"))
            return made[-1]
    else:
        def make(max_calls: int | None = 2) -> SharedState:
            made.append(file_state(max_calls, str(tmp_path / "state")))
            return made[-1]
    yield make
    for state in made:
        state.close()


def test_one_cap_for_every_sharer(states: Callable[..., SharedState]) -> None:
    a, b = states(2), states(2)
    assert a.slots.try_enter() and b.slots.try_enter()
    assert a.slots.full() and b.slots.full() and not a.slots.try_enter() and not b.slots.try_enter()
    assert (a.slots.active, b.slots.active, a.slots.active_all) == (1, 1, 2)
    b.slots.leave()
    assert not a.slots.full() and a.slots.try_enter() and b.slots.active_all == 2
    a.close()  # a host closing gives its slots back
    assert b.slots.active_all == 0


def test_concurrent_admissions_never_pass_the_cap(states: Callable[..., SharedState]) -> None:
    sharers = [states(5) for _ in range(4)]
    admitted: list[bool] = []
    barrier = threading.Barrier(20)

    def enter(state: SharedState) -> None:
        barrier.wait(5)
        admitted.append(state.slots.try_enter())
    threads = [threading.Thread(target=enter, args=(sharers[i % 4],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert admitted.count(True) == 5 and sharers[0].slots.active_all == 5


def test_a_token_is_used_once_whichever_sharer_redeems_it(states: Callable[..., SharedState]) -> None:
    a, b = states(), states()
    now = time.time()
    assert a.used.claim("nonce-1", now + 30, now)
    assert not b.used.claim("nonce-1", now + 30, now) and not a.used.claim("nonce-1", now + 30, now)
    assert b.used.claim("nonce-2", now + 30, now)
    with pytest.raises(ValueError):
        a.used.claim("../etc", now + 30, now)


def test_a_transfer_put_by_one_sharer_is_taken_once_by_another(states: Callable[..., SharedState]) -> None:
    a, b = states(), states()
    now = time.time()
    a.transfers.put("CA1", "+15551234567", now + 60, now)
    assert b.transfers.take("CA1", now) == "+15551234567"
    assert a.transfers.take("CA1", now) is None and b.transfers.take("CA1", now) is None
    assert b.transfers.take("../x", now) is None


# ---------------------------------------------------------------------------- Redis: keys, leases
def test_every_key_is_namespaced_and_expires(redis_server: Any) -> None:
    state = open_state(3, None, redis_server.url, lease_s=LEASE_S, prefix="ns1")
    other = open_state(3, None, redis_server.url, lease_s=LEASE_S, prefix="ns2")
    try:
        now = time.time()
        assert state.slots.try_enter() and state.used.claim("n1", now + 30, now)
        state.transfers.put("CA1", "+15551234567", now + 60, now)
        state.owner.tick()  # the host record
        assert other.slots.active_all == 0 and other.used.claim("n1", now + 30, now)  # prefixes never meet
        client = redis_client.Redis.from_url(redis_server.url)
        keys = sorted(k.decode() for k in client.keys("*"))
        assert keys == ["ns1:hosts", "ns1:slots", "ns1:transfer:CA1", "ns1:used:n1", "ns2:hosts", "ns2:used:n1"]
        assert all(0 < client.pttl(key) <= 61_000 for key in keys)  # every key bounded by a TTL
        assert state.health() == {"shared_state": "ok", "bridges": 1, "bridges_draining": 0}
        state.set_draining()
        state.owner.tick()
        assert state.health()["bridges_draining"] == 1
        client.close()
    finally:
        state.close()
        other.close()


HOLDER = """
import sys, time
from voicebridge.serving.sharedstate import open_state
state = open_state(5, None, sys.argv[1], lease_s=float(sys.argv[2]), prefix="kill")
assert state.slots.try_enter() and state.slots.try_enter()
print("held", flush=True)
time.sleep(60)
"""


def test_a_killed_hosts_slots_are_renewed_while_it_lives_and_come_back_after_kill_9(redis_server: Any) -> None:
    """Another process holds 2 slots; they outlive several lease times (renewed), then it is
    killed with SIGKILL (no cleanup) and its slots come back once the lease runs out."""
    watcher = open_state(5, None, redis_server.url, lease_s=LEASE_S, prefix="kill")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_server.url, str(LEASE_S)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(3 * LEASE_S)  # three lease times: only renewal keeps them
        assert watcher.slots.active_all == 2
        holder.kill()
        holder.wait(5)
        killed = time.monotonic()
        assert wait_until(lambda: watcher.slots.active_all == 0, timeout=10 * LEASE_S, interval=0.02)
        assert time.monotonic() - killed < 10 * LEASE_S  # bounded by the lease, not forever
        assert watcher.slots.try_enter()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        watcher.close()


# ---------------------------------------------------------------------------- faults
def test_redis_unreachable_at_startup_is_one_line_naming_redis_url(redis_server: Any) -> None:
    url = redis_server.url.replace("redis://", "redis://:s3cret@")
    redis_server.stop()
    with pytest.raises(StoreUnreachable) as raised:
        open_state(2, None, url)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ConfigError) as config_error:
        create_app(Settings(local_backend=True, redis_url=url))
    assert wait_until(lambda: {t.name for t in threading.enumerate()} <= before)  # the embedded server stopped
    message = str(config_error.value)
    assert message.startswith("REDIS_URL: Redis at redis://:***@127.0.0.1:") and "unreachable at startup" in message
    assert "\n" not in message and "s3cret" not in message and "s3cret" not in str(raised.value)


def speaking_realtime(chunks: int) -> Any:
    """A connector whose fake answers the greeting with ``chunks`` frames (a call that goes on)."""
    def connector(config: BridgeConfig) -> FakeRealtime:
        fake = FakeRealtime()
        fake.on_client_event = lambda event: (fake.response("resp_1", "item_1", [b"\x7f" * 160] * chunks)
                                              if event["type"] == "response.create" else None)
        return fake
    return connector


def leases(url: str, prefix: str = "voicebridge") -> int:
    """The leases in Redis itself (``active_all`` falls back to this host's count while Redis is away)."""
    client = redis_client.Redis.from_url(url)
    try:
        return int(client.zcard(f"{prefix}:slots"))
    finally:
        client.close()


def voice(app: Flask) -> ET.Element:
    return ET.fromstring(app.test_client().post("/voice", data=FORM).data)


def test_redis_lost_mid_call_the_live_call_goes_on_new_calls_are_refused_and_service_returns(
        redis_server: Any, lines: Callable[[str], list[str]]) -> None:
    app = Flask("outage")
    bridge = VoiceBridge(app, CFG, max_calls=2, connect=speaking_realtime(250), redis_url=redis_server.url,
                         redis_options={"lease_s": LEASE_S, "retry_s": 0.05})
    with running(app) as server:
        live = TwilioPeer(server.ws_url, sid="1")
        live.start()
        assert live.wait_media(5)
        redis_server.stop()  # Redis lost mid-call
        assert live.wait_media(50)  # the live call goes on: a second more of the agent's audio
        refused = voice(app)  # the 'refuse' policy: the apology
        assert [child.tag for child in refused] == ["Say", "Hangup"]
        assert lines("refused at the webhook: the shared state is unreachable")
        health = app.test_client().get("/healthz")
        assert health.status_code == 200 and health.get_json()["shared_state"] == "unreachable"
        redis_server.start()  # back, empty (no persistence): no restart of the bridge
        assert wait_until(lambda: voice(app).find("Connect/Stream") is not None, timeout=5)
        assert wait_until(lambda: leases(redis_server.url) == 1, timeout=5)  # the live call's lease written back
        second = TwilioPeer(server.ws_url, sid="2")
        second.start()
        assert second.wait_media(1)
        assert bridge.slots.active_all == 2 and voice(app).find("Say") is not None  # the cap holds again
        for peer in (live, second):
            peer.stop()
            peer.read_until_closed()
            peer.close()
        assert wait_until(lambda: leases(redis_server.url) == 0)


def test_the_local_outage_policy_admits_new_calls_under_the_host_cap(redis_server: Any) -> None:
    app = Flask("outage-local")
    bridge = VoiceBridge(app, CFG, max_calls=5, connect=speaking_realtime(250), redis_url=redis_server.url,
                         redis_options={"lease_s": LEASE_S, "retry_s": 0.05, "outage": "local",
                                        "outage_max_calls": 1})
    with running(app) as server:
        redis_server.stop()
        assert voice(app).find("Connect/Stream") is not None  # answered: room under the local cap
        first = TwilioPeer(server.ws_url, sid="1")
        first.start()
        assert first.wait_media(1)
        assert voice(app).find("Say") is not None  # the local cap (1) is reached
        over = TwilioPeer(server.ws_url, sid="2")
        over.start()
        _, code, _ = over.read_until_closed()
        over.close()
        assert code == 1013
        redis_server.start()
        assert wait_until(lambda: leases(redis_server.url) == 1, timeout=5)  # counted in the shared cap again
        assert voice(app).find("Connect/Stream") is not None  # the shared cap (5) rules again
        first.stop()
        first.read_until_closed()
        first.close()
        assert wait_until(lambda: bridge.slots.active_all == 0)


# ---------------------------------------------------------------------------- several hosts
def signature(url: str, form: dict[str, str] | None = None) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, form or {}))


def post(url: str, form: dict[str, str]) -> ET.Element:
    body = urllib.parse.urlencode(form).encode()
    headers = {"X-Twilio-Signature": signature(url, form),
               "Content-Type": "application/x-www-form-urlencoded"}
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as resp:
        return ET.fromstring(resp.read())


def transfer_when_told(go: threading.Event) -> Callable[[Any], None]:
    """A Realtime script: configure the session, wait for ``go``, then transfer the caller to "support"."""
    def script(ws: Any) -> None:
        open_session(ws)
        go.wait(10)
        audio_response(ws, 2, done=False)  # the handoff line (two frames), then the tool call
        send_event(ws, rt_audio_done("resp_1", "item_1"))
        send_event(ws, rt_function_call("resp_1", "c1", "transfer_call", {"destination": "support"}))
        send_event(ws, rt_response_done("resp_1"))
        drain_until_closed(ws)
    return script


def echo_marks_until_closed(peer: TwilioPeer) -> None:
    """Play the call out as Twilio does: every mark echoed once its audio has played, until the close."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            message = json.loads(peer.ws.recv())
        except (websocket.WebSocketException, OSError, ValueError):
            return
        if message.get("event") == "mark":
            peer.send(twilio_mark(message["mark"]["name"], peer.stream_sid))
    raise AssertionError("the bridge did not end the call")


def test_three_hosts_act_as_one_bridge_through_redis(redis_server: Any, tmp_path: Path) -> None:
    """/voice on A, the stream on B, /voice/after on C: C dials the transfer B recorded. One cap
    (1) for the three hosts (separate processes and state directories), and a token redeemed on
    B is refused on C."""
    go = threading.Event()
    realtime = ScriptedRealtime(transfer_when_told(go))
    hosts = start_instances(str(tmp_path), 3, REDIS_URL=redis_server.url, MAX_CALLS="1", CALL_LEASE_S="2",
                            TWILIO_AUTH_TOKEN=TOKEN, TRANSFER_TO="+15551234567", GREETING="", LOCAL_BACKEND="0",
                            OPENAI_REALTIME_URL=realtime.url, STARTUP_CHECK="0")
    a, b, c = hosts
    try:
        call_sid = "CA" + "5" * 32
        connect = post(f"{a.url}/voice", dict(FORM, CallSid=call_sid))
        token = {p.get("name"): p.get("value") for p in connect.iter("Parameter")}["vb_token"]
        call = TwilioPeer(b.ws_url, {"x-twilio-signature": signature(b.ws_url)}, sid="5")
        call.start(vb_token=token)
        assert wait_until(lambda: b.health()["active_calls"] == 1, timeout=10)
        busy = post(f"{c.url}/voice", dict(FORM, CallSid="CA" + "6" * 32))  # the cap (1) is global
        assert [child.tag for child in busy] == ["Say", "Hangup"]
        go.set()  # the agent transfers; B ends the stream
        echo_marks_until_closed(call)
        call.close()
        after = post(f"{c.url}/voice/after", {"CallSid": call_sid, "AccountSid": "ACabc"})
        assert after.find("Dial/Number") is not None and after.find("Dial/Number").text == "+15551234567"
        again = post(f"{a.url}/voice/after", {"CallSid": call_sid, "AccountSid": "ACabc"})
        assert [child.tag for child in again] == ["Hangup"]  # taken once, whichever host asks
        replay = TwilioPeer(c.ws_url, {"x-twilio-signature": signature(c.ws_url)}, sid="5")
        replay.start(vb_token=token)  # B redeemed it: C refuses it
        messages, _, _ = replay.read_until_closed()
        replay.close()
        assert messages == [] and "refused: stream token already used" in c.log()
        assert wait_until(lambda: a.health()["active_calls_all"] == 0, timeout=5)
        assert a.health()["bridges"] == 3
    finally:
        go.set()
        for host in hosts:
            host.stop()
        realtime.stop()


def test_the_example_reads_the_redis_settings_and_names_a_bad_one() -> None:
    env = {"LOCAL_BACKEND": "1", "REDIS_URL": "redis://r:6379/0", "REDIS_PREFIX": "fleet1", "CALL_LEASE_S": "12",
           "REDIS_OUTAGE": "local", "REDIS_OUTAGE_MAX_CALLS": "40"}
    settings = Settings.from_env(env)
    assert (settings.redis_url, settings.redis_prefix, settings.call_lease_s, settings.redis_outage,
            settings.redis_outage_max_calls) == ("redis://r:6379/0", "fleet1", 12.0, "local", 40)
    assert "redis://" not in repr(settings)  # a URL may carry a password
    for bad, named in ((dict(env, REDIS_OUTAGE="maybe"), "REDIS_OUTAGE"),
                       (dict(env, REDIS_OUTAGE_MAX_CALLS=""), "REDIS_OUTAGE_MAX_CALLS"),
                       (dict(env, CALL_LEASE_S="0"), "CALL_LEASE_S"), (dict(env, CALL_LEASE_S="nan"), "CALL_LEASE_S")):
        with pytest.raises(ConfigError, match=named):
            Settings.from_env(bad)


def test_a_redis_too_old_for_getdel_is_named() -> None:
    from voicebridge.serving.redisstate import MIN_VERSION, version_at_least

    assert version_at_least("7.0.15", MIN_VERSION) and version_at_least("6.2.0", MIN_VERSION)
    assert not version_at_least("6.0.20", MIN_VERSION) and not version_at_least("", MIN_VERSION)
    assert not version_at_least("7.x", MIN_VERSION)


def test_a_drain_is_published_to_the_fleet(redis_server: Any) -> None:
    app_a, app_b = Flask("a"), Flask("b")
    bridge_a = VoiceBridge(app_a, CFG, max_calls=2, redis_url=redis_server.url, redis_options={"lease_s": LEASE_S})
    bridge_b = VoiceBridge(app_b, CFG, max_calls=2, redis_url=redis_server.url, redis_options={"lease_s": LEASE_S})
    try:
        bridge_a.drain()
        assert app_a.test_client().get("/healthz").status_code == 503
        assert wait_until(lambda: app_b.test_client().get("/healthz").get_json()["bridges_draining"] == 1, timeout=5)
        assert app_b.test_client().get("/healthz").get_json()["bridges"] == 2
    finally:
        bridge_a.close()
        bridge_b.close()
    assert leases(redis_server.url) == 0


def test_a_call_that_ends_while_redis_stalls_gives_its_slot_back_when_it_answers(redis_server: Any) -> None:
    """Redis stalled (CLIENT PAUSE: commands time out, data kept): the ended call's release fails,
    and is retried by the renewer once Redis answers -- well before its lease would expire."""
    state = open_state(2, None, redis_server.url, lease_s=30.0, retry_s=0.05, timeout_s=0.2, prefix="voicebridge")
    client = redis_client.Redis.from_url(redis_server.url)
    try:
        assert state.slots.try_enter() and leases(redis_server.url) == 1
        client.execute_command("CLIENT", "PAUSE", "600", "ALL")
        state.slots.leave()  # times out: kept to release later
        assert state.slots.active == 0
        assert wait_until(lambda: leases(redis_server.url) == 0, timeout=5)  # the renewer's retry, not the 30 s lease
    finally:
        state.close()
        client.close()


def test_a_transfer_decided_while_redis_is_away_is_kept_by_its_host(redis_server: Any) -> None:
    host, other = (open_state(2, None, redis_server.url, lease_s=LEASE_S, retry_s=0.05) for _ in range(2))
    try:
        redis_server.stop()
        now = time.time()
        host.transfers.put("CA7", "+15551234567", now + 60, now)  # a live call ends in a transfer
        assert other.transfers.take("CA7", now) is None
        assert host.transfers.take("CA7", now) == "+15551234567"
    finally:
        host.close()
        other.close()


def test_a_missing_redis_client_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "voicebridge.serving.redisstate")
    with pytest.raises(ImportError, match=r"pip install 'redis>=5' \(voicebridge's 'redis' extra\)"):
        open_state(2, None, "redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match=r"^REDIS_URL: .*pip install 'redis>=5'"):
        create_app(Settings(local_backend=True, redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(ValueError, match="apply only with redis_url"):
        open_state(2, None, None, lease_s=5)
