"""A whole simulated call: caller simulator -> example app (real server) -> MediaSession -> local server."""
import threading
import wave

from voicebridge.app import Settings, create_app, serve
from voicebridge.local.server import LocalRealtimeServer
from voicebridge.sim import SimulatedCaller

SCRIPT = "wait_agent:5000,wait_quiet:400,say:What can you tell me?,wait_agent:6000,interrupt:300:Stop please,wait_quiet:600,hangup"


def test_full_call_through_app_bridge_and_local_server(tmp_path):
    ended, done = [], threading.Event()

    def on_end(metrics):
        ended.append(metrics)
        done.set()

    local = LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2).start()
    server = None
    try:
        app = create_app(Settings(openai_realtime_url=local.url, port=0), on_call_end=on_end)
        server = serve(app, "127.0.0.1", 0)
        record = tmp_path / "call.wav"
        report = SimulatedCaller(server.ws_url, SCRIPT, record_path=str(record), max_seconds=30).run()
        assert done.wait(10)
        stats = local.stats()
    finally:
        if server is not None:
            server.shutdown()
        local.stop()
    bridge = ended[0]
    # greeting heard, then the answer; every frame exactly 160 bytes
    assert report.frames_received > 50 and set(report.frame_sizes) == {160}
    assert report.time_to_first_audio_ms is not None
    tone = report.tone  # every 20 ms block of the tone responses: in order, no gap, no repeat
    assert len(tone["responses"]) >= 2 and tone["gaps"] == 0 and tone["repeats"] == 0
    assert tone["out_of_order"] == 0 and tone["partial"] == 0
    # the interruption was cleared and the model told what was heard
    assert len(report.interruptions) == 1 and report.interruptions[0].clear_ms is not None
    assert bridge["barge_in_events"] == 1 and bridge["clears_sent"] == 1
    assert len(stats["truncations"]) == 1
    assert "invalid_value" not in stats["errors"]  # the truncate was accepted, not beyond the audio
    assert bridge["accounting_ok"] and bridge["first_frame_bytes"] == 160
    with wave.open(str(record)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000 and w.getnframes() > 8000
