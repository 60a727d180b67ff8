"""The call's recording: the heard channel is the caller's playout, cut where clears cut it."""
import base64
import os
import random
import struct
import threading
import time
import wave

from voicebridge import BridgeConfig
from voicebridge.audio.mulaw import SAMPLE_RATE, ULAW_TABLE
from voicebridge.call.recording import HeardChannel, StereoMix, WavStream, interleave, repair
from voicebridge.dev.sim.playout import PlayoutBuffer
from voicebridge.testing import wait_until


def trace(seed):
    """Sends (a pacer's 40 ms lead, then one per 20 ms, with jitter and gaps) and clears."""
    rnd = random.Random(seed)
    t, events = 10.0, []
    for burst in range(12):
        frames = rnd.randrange(3, 60)
        for n in range(frames):
            step = 0.0 if n < 2 else 0.020 + rnd.uniform(-0.002, 0.004)
            t += step
            events.append(("sent", bytes([burst * 16 + n % 16]) * 160, t))
        if rnd.random() < 0.5:  # a barge-in: a clear while audio is still queued
            events.append(("cleared", None, t + rnd.uniform(0.0, frames * 0.02)))
            t = events[-1][2]
        t += rnd.uniform(0.0, 1.5)
    return events, t + 1.0


def test_heard_channel_plays_like_the_callers_playout_clears_included():
    for seed in range(20):
        events, end = trace(seed)
        heard, playout = HeardChannel(10.0), PlayoutBuffer(10.0)
        ours, theirs = bytearray(), bytearray()
        for kind, frame, at in events:
            if kind == "sent":
                ours += heard.sent(frame, at)
                playout.media(frame, at)
            else:
                ours += heard.cleared(at)
                playout.clear(at)
            theirs += playout.advance(at).audio
        ours += heard.advance(end)
        theirs += playout.advance(end).audio
        assert bytes(ours) == bytes(theirs), seed
        assert heard.cleared_bytes == playout.cleared_bytes
        assert len(ours) == int((end - 10.0) * SAMPLE_RATE + 1e-6)


def test_a_clear_cuts_to_the_sample():
    heard = HeardChannel(0.0)
    heard.sent(b"\x01" * 160, 0.0)
    heard.sent(b"\x02" * 160, 0.0)
    out = heard.cleared(0.025)  # 200 samples in: the second frame cut after 40 of them
    assert out == b"\x01" * 160 + b"\x02" * 40
    assert heard.cleared_bytes == 120
    assert heard.advance(0.030) == b"\xff" * 40


def test_stereo_mix_pairs_channels_and_fills_a_silent_caller_bounded():
    mix = StereoMix(max_skew=800)
    assert mix.add(left=b"\x00" * 100) == b""  # nothing heard yet: waits
    out = mix.add(right=b"\xff" * 60)
    assert len(out) == 60 * 4
    out = mix.add(right=b"\xff" * 2000)  # the caller stopped: filled to 800 behind, never more
    assert mix.filled == 2060 - 100 - 800
    assert len(out) == (2060 - 800 - 60) * 4
    rest = mix.finish(800)
    assert len(rest) == 800 * 4


def test_interleave_is_left_caller_right_heard():
    pcm = interleave(b"\x00\x80", b"\xff\x7f")
    assert struct.unpack("<4h", pcm) == (ULAW_TABLE[0], ULAW_TABLE[0xFF], ULAW_TABLE[0x80], ULAW_TABLE[0x7F])


def test_wav_stream_header_follows_flushes_and_repair_fixes_a_crash(tmp_path):
    path = str(tmp_path / "a.wav")
    wav = WavStream(path)
    wav.write(b"\x01\x00" * 2 * 8000)  # one second of stereo
    wav.flush()
    with wave.open(path) as w:  # readable mid-call
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 8000)
    wav.write(b"\x02\x00" * 2 * 4000 + b"\x03")  # then the process dies mid-sample, header stale
    wav._file.flush()
    assert repair(path) == 12000 * 4
    with wave.open(path) as w:
        assert w.getnframes() == 12000
    wav._file.close()


class TracedClock:
    """The real clock, remembering per thread what it last said (the link stamps a send with it)."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self):
        self._local.last = time.monotonic()
        return self._local.last

    @property
    def last(self):
        return self._local.last


def channels(path):
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    pcm = struct.unpack(f"<{len(data) // 2}h", data)
    return pcm[0::2], pcm[1::2]


def test_recorded_heard_channel_is_what_the_callers_playout_played(bridge_call, tmp_path):
    """Through the session's real threads: the carrier side feeds a Twilio-like playout the same
    sends and clears; the WAV's right channel equals what it played, sample for sample, the
    barge-in's cut included, and both channels last as long as the call."""
    clock = TracedClock()
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          recording_dir=str(tmp_path))
    call = bridge_call(config, clock=clock)
    playout, origin = [], []

    def carrier_side(msg):
        if not playout:
            return
        if msg["event"] == "media":
            playout[0].media(base64.b64decode(msg["media"]["payload"]), clock.last)
        elif msg["event"] == "clear":
            playout[0].clear(clock.last)

    call.twilio.on_send = carrier_side
    call.start()
    assert wait_until(lambda: call.session.after.recording is not None)
    origin.append(call.session.after.recording._origin)
    playout.append(PlayoutBuffer(origin[0]))
    caller = bytes(range(160))
    call.twilio.media(caller, n=10)
    call.openai.response("resp_1", "item_1", [bytes([1 + n % 50]) * 160 for n in range(40)])
    assert call.twilio.wait_for(lambda t: len(t.messages("media")) >= 15)
    call.session.outbound.interrupt()  # what a barge-in does: clear, queued audio flushed
    call.openai.response("resp_2", "item_2", [b"\x60" * 160 * 5])
    assert call.twilio.wait_for(lambda t: len(t.messages("media")) >= 20 and t.messages("clear"))
    time.sleep(0.2)
    m = call.finish()
    recording = call.session.after.recording
    assert recording.wait(5.0) is not None
    assert wait_until(lambda: not recording._thread.is_alive())  # the writer ends with the call
    left, right = channels(recording.path)
    samples = len(left)
    played = playout[0].advance(origin[0] + samples / SAMPLE_RATE).audio
    assert right == tuple(ULAW_TABLE[b] for b in played)
    assert playout[0].cleared_bytes > 0 and m["frames_flushed"] + playout[0].cleared_bytes // 160 > 0
    assert left[:1600] == tuple(ULAW_TABLE[b] for b in caller * 10)
    ended_at = call.session.after.ended_at  # the call's end on the session clock
    assert samples == int((ended_at - origin[0]) * SAMPLE_RATE + 1e-6)  # both channels: the call's duration
    assert os.path.getsize(recording.path) == 44 + samples * 4
    assert recording.result.seconds == round(samples / SAMPLE_RATE, 3)


def test_a_consent_line_is_said_before_the_greeting_only_when_recording(bridge_call, tmp_path):
    plain = BridgeConfig(greeting_instructions="Say hi.", recording_consent="This call is recorded.")
    assert plain.first_words == "Say hi."  # not recording: nothing to consent to
    recorded = plain.replace(recording_dir=str(tmp_path), join_timeout_s=3.0, barge_in=False)
    assert recorded.first_words.index("This call is recorded.") < recorded.first_words.index("Say hi.")
    silent_first = recorded.replace(greeting_instructions=None)
    assert "This call is recorded." in silent_first.first_words  # the agent speaks first to say it
    call = bridge_call(recorded).start()
    assert wait_until(lambda: call.openai.requested("greeting"))
    assert call.openai.requested("greeting")[0]["response"]["instructions"] == recorded.first_words
    call.finish()


def test_mid_call_the_file_is_readable_up_to_the_last_second_and_the_sink_gets_it_off_the_call(tmp_path):
    """A crash loses about the last second: the header follows every second written. At the end
    the sink gets the finished file on the writer thread; its answer is the location."""
    import logging

    from voicebridge.call.log import CallLog
    from voicebridge.call.recording import CallRecording

    now = [0.0]
    sunk = []
    rec = CallRecording(str(tmp_path / "r" / "call.wav"), 0.0, lambda: now[0], CallLog(logging.getLogger()),
                        sink=lambda path: sunk.append((path, threading.current_thread().name)) or "s3://b/call.wav")
    for n in range(150):  # 3 s of a caller frame and an agent frame per 20 ms
        now[0] = n * 0.02
        rec.caller(b"\x10" * 160, now[0])
        rec.sent(b"\x20" * 160, now[0])

    def frames_in_header() -> int:
        try:
            with wave.open(rec.path) as w:
                return w.getnframes()
        except (OSError, EOFError, wave.Error):
            return 0

    # what a crash now would leave: valid, at most ~1 s short (the header is patched after the data
    # it counts is written: waited for, not read once as the data lands, review of a CI-load failure)
    assert wait_until(lambda: frames_in_header() >= 2 * 8000 - 160)
    rec.finish(3.0)
    result = rec.wait(5.0)
    assert result.location == "s3://b/call.wav" and result.seconds == 3.0 and result.events_dropped == 0
    assert sunk[0][0] == rec.path and sunk[0][1].startswith("vb-recording")
    left, right = channels(rec.path)
    assert left[:160] == (ULAW_TABLE[0x10],) * 160 and right[:160] == (ULAW_TABLE[0x20],) * 160
