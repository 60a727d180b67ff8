"""Sans-IO caller measurements: gaps/bursts/stalls, barge-in numbers, tone-block checks."""
from voicebridge.dev.sim.metrics import CallerMetrics
from voicebridge.dev.sim.playout import PlayoutBuffer
from voicebridge.dev.sim.report import CallReport
from voicebridge.dev.sim.tonecheck import ToneChecker
from voicebridge.dev.tone import tone_audio, tone_block


def _metrics():
    return CallerMetrics(CallReport(url="ws://x", stream_sid="MZ", call_sid="CA"))


def _arrive(m, times_ms, payload=b"\xff" * 160):
    for t in times_ms:
        m.media(t / 1000, payload)


def test_lead_is_not_a_burst_and_pauses_between_utterances_are_not_stalls():
    m = _metrics()
    utterance = [0, 0, 0] + [20 * i for i in range(1, 20)]  # 2-frame send-ahead, then paced
    _arrive(m, [1000 + t for t in utterance] + [2000 + t for t in utterance])
    r = m.finish(3.0, PlayoutBuffer(0.0))
    assert (r.utterances, r.bursts, r.stalls) == (2, 0, 0)
    assert r.gap_p50_ms == 20 and r.gap_max_dev_ms == 0
    assert r.time_to_first_audio_ms == 1000 and r.frame_sizes == {160: 44}


def test_bursts_beyond_lead_and_stalls_inside_an_utterance():
    m = _metrics()
    _arrive(m, [0, 0, 0, 0, 20, 40, 100, 120, 300, 320])  # 4th frame bursts; 60 ms and 180 ms stalls
    r = m.finish(1.0, PlayoutBuffer(0.0))
    assert (r.utterances, r.bursts, r.stalls) == (1, 1, 2)
    assert r.gap_max_dev_ms == 160


def _agent_talks(p: PlayoutBuffer, m, start: float, frames: int) -> None:
    """Paced agent audio from ``start``, received and played at once."""
    for i in range(frames):
        t = start + i * 0.02
        p.media(b"\x10" * 160, t)
        m.media(t, b"\x10" * 160)
        p.advance(t)


def test_interruption_numbers():
    p = PlayoutBuffer(0.0)
    m = _metrics()
    _agent_talks(p, m, 0.0, 31)  # paced agent audio from 0.0 s until the clear at 0.6 s
    m.onset(0.5, True)
    m.clear(0.6)
    p.clear(0.6)
    m.clear(0.9)  # a bridge that cleared at its duck clears again when the barge-in is confirmed
    m.media(1.5, b"\x10" * 160)  # the agent's next utterance (the answer to the caller)
    m.clear(1.8)  # ... and whatever clears that one
    p.advance(2.0)
    [it] = m.finish(2.0, p).interruptions
    assert it.agent_talking and round(it.clear_ms) == 100 and it.clears_after_ms == [100.0, 400.0]
    assert round(it.heard_after_ms) == 100  # played until the clear
    assert round(it.last_media_after_ms) == 100 and it.frames_after_onset == 6
    assert round(it.last_media_before_ms) == 20


def test_an_interruption_the_agent_talked_on_after_says_so():
    """(outside check out1) The duck's clear stops the agent at once; if the bridge then lets the
    answer go on, the first clear and the audio heard until it looked like a perfect barge-in.
    The report says when the agent was heard again and how much of it in the 3 s after."""
    p = PlayoutBuffer(0.0)
    m = _metrics()
    _agent_talks(p, m, 0.0, 26)  # agent audio 0.0-0.52 s
    m.onset(0.5, True)
    m.clear(0.52)
    p.clear(0.52)
    p.advance(1.0)
    _agent_talks(p, m, 1.0, 50)  # the answer goes on at 1.0 s, for a second
    p.advance(4.0)
    [it] = m.finish(4.0, p).interruptions
    assert round(it.clear_ms) == 20 and round(it.heard_after_ms) == 20
    assert round(it.heard_again_ms) == 500 and round(it.heard_3s_ms) == 1020
    from voicebridge.dev.sim.caller import _summary
    [line] = [x for x in _summary(m.report) if x.startswith("interruption 1")]
    assert "the agent was heard again 500 ms after the onset (1020 ms of it in the 3 s after the onset)" in line


def test_tone_checker_accepts_rechunked_audio():
    audio = tone_audio(30, response=3) + tone_audio(10, response=4)
    c = ToneChecker()
    for i in range(0, len(audio), 333):
        c.feed(audio[i:i + 333])
    assert c.report.ok and c.report.blocks == 40 and c.report.responses == [3, 4]


def test_tone_checker_flags_gaps_repeats_and_cut_blocks():
    c = ToneChecker()
    for i in [0, 1, 3, 3, 2]:
        c.feed(tone_block(i))
    c.feed(tone_block(0, response=1)[:90] + tone_block(1, response=1))
    r = c.report
    assert (r.gaps, r.repeats, r.out_of_order, r.partial) == (1, 1, 1, 1)
    assert r.late_start == 1 and not r.ok  # response 1 seen first at block 1 (block 0 was cut)


def test_pause_while_the_caller_makes_sound_is_a_yield_not_a_stall():
    m = _metrics()
    for i in range(60):  # caller levels every 20 ms: a click at 0.40-0.46 s, quiet otherwise
        m.levels(-10.0 if 20 <= i <= 22 else -70.0, -20.0)
    paced = [20 * i for i in range(21)] + [480 + 20 * i for i in range(10)] + [800 + 20 * i for i in range(5)]
    # agent audio pauses 400 -> 480 ms (the duck on the click) and 660 -> 800 ms (caller quiet)
    _arrive(m, paced)
    r = m.finish(1.2, PlayoutBuffer(0.0))
    assert (r.yields, r.stalls) == (1, 1)
    assert r.timing_problems() == ["1 stall(s) > 40 ms while the agent talked"]
    assert r.problems() == []  # a wall-clock figure, not a broken call


def test_jitter_is_not_running_ahead_but_a_sender_faster_than_real_time_is():
    m = _metrics()
    jittered = [0, 0, 0] + [20 * i + (4 if i % 2 else 0) for i in range(1, 50)]  # late, then on time
    _arrive(m, jittered)
    r = m.finish(1.2, PlayoutBuffer(0.0))
    assert r.bursts > 0 and r.ahead_frames == 0 and r.timing_problems() == []
    fast = _metrics()
    _arrive(fast, [15 * i for i in range(50)])  # 15 ms per 20 ms frame: drifts ahead of real time
    r = fast.finish(1.0, PlayoutBuffer(0.0))
    assert r.ahead_frames > 0 and r.ahead_max_ms > 200
    assert any("ahead of real time" in p for p in r.timing_problems())


def test_a_failed_tools_sorry_is_no_apology_for_a_lost_model():
    """(A new user's tool that raised: the agent's "Sorry, I could not look that up" begins with
    the apology's first 28 frames; the caller reported an outage that never happened.)"""
    from voicebridge.dev.tts import load_prompt

    m = _metrics()
    sorry = load_prompt("tool_failed")
    for i in range(0, len(sorry) - 159, 160):
        m.media(i / 8000, sorry[i:i + 160])
    assert m.finish(5.0, PlayoutBuffer(0.0)).apologies == 0


def test_an_apology_and_dead_air_are_problems():
    """A call that ended in the bridge's apology, or where a wait for the agent heard nothing,
    did not work, however well paced its frames were."""
    from voicebridge.dev.sim.metrics import APOLOGY
    from voicebridge.dev.tts import load_prompt

    m = _metrics()
    apology = load_prompt("apology")
    _arrive(m, [0, 0], payload=b"\xff" * 160)
    for i in range(0, len(apology) - 159, 160):  # the bundled apology, framed as the bridge frames it
        m.media(0.04 + i / 8000, apology[i:i + 160])
    m.event(5.0, "wait_timeout", {"step": "wait_agent:3000", "dead_air_ms": 3000})
    m.event(6.0, "wait_timeout", {"step": "wait_quiet:600"})  # the agent talking on: not dead air
    r = m.finish(7.0, PlayoutBuffer(0.0))
    assert APOLOGY and r.apologies == 1
    assert r.dead_air == [{"t": 5.0, "ms": 3000}]
    assert r.problems() == ["the caller heard the bridge's apology (the model was unavailable)",
                            "dead air: 1 wait(s) for the agent heard nothing (up to 3.0 s)"]
    clean = _metrics()
    _arrive(clean, [20 * i for i in range(50)], payload=b"\x10" * 160)
    assert clean.finish(1.0, PlayoutBuffer(0.0)).problems() == []


def test_the_demo_passes_a_working_call_whatever_its_timing_figures():
    """``voicebridge demo`` exits 0 when the call worked; a stall is printed as a figure."""
    from voicebridge.dev.demo import call_worked

    stalled = CallReport(url="ws://x", stream_sid="MZ", call_sid="CA", stalls=2)
    assert stalled.timing_problems() and call_worked(stalled, {"accounting_ok": True})
    assert not call_worked(stalled, {"accounting_ok": False}) and not call_worked(stalled, None)
    apologised = CallReport(url="ws://x", stream_sid="MZ", call_sid="CA", apologies=1)
    assert not call_worked(apologised, {"accounting_ok": True})


def test_the_outbound_summary_ends_with_its_problems_and_timing_as_the_inbound_one_does():
    """The voicemail call's summary says what went wrong (its own checks and the callee's report)."""
    from voicebridge.dev.demo import Outbound

    bridge = {"accounting_ok": True, "close_reason": "voicemail left", "frames_sent": 50}
    left = Outbound(sid="CA1", answered_by="machine_end_beep", message_after_verdict_ms=80.0, ended_by="bridge",
                    bridge=bridge, report=CallReport(url="ws://x", stream_sid="MZ", call_sid="CA1", stalls=1))
    assert left.worked and left.lines()[-2] == "problems: none"
    assert left.lines()[-1].startswith("timing (") and "1 stall(s)" in left.lines()[-1]
    early = Outbound(sid="CA2", answered_by="machine_end_beep", spoke_early=True, ended_by="callee",
                     bridge=dict(bridge, accounting_ok=False),
                     report=CallReport(url="ws://x", stream_sid="MZ", call_sid="CA2", apologies=1))
    assert not early.worked
    assert early.lines()[-2] == ("problems: agent audio over the greeting or the beep; ended by the callee, not the "
                                 "bridge; frame accounting mismatch; the caller heard the bridge's apology "
                                 "(the model was unavailable)")
    assert Outbound(error="boom").lines()[-1] == "problems: boom" and not Outbound(error="boom").worked
    assert Outbound(answered_by="human", ended_by="bridge", bridge=bridge).problems() == [
        "answered by human, not a voicemail"]


def test_the_demo_summary_says_what_dropped_frames_are():
    """(out1) a hung-up call's 600 dropped frames read like audio the caller lost: the summary
    says they are the agent's audio never sent, and how long."""
    from voicebridge.dev.demo import _dropped_note

    assert _dropped_note(0) == ""
    assert "12000 ms" in _dropped_note(600) and "never sent" in _dropped_note(600)


def test_a_call_that_got_no_agent_audio_says_so_rather_than_none_figures_and_on_time():
    """(helper-94) a call that never connected printed "media gaps p50 None ms" and timing "on time"."""
    from voicebridge.dev.sim.caller import _summary, verdict_lines

    silent = CallReport(url="ws://x", stream_sid="MZ", call_sid="CA", apologies=1)
    lines = _summary(silent)
    assert "media gaps: none to measure" in "\n".join(lines) and "None ms" not in "\n".join(lines)
    assert lines[-1].endswith(": no agent audio to time")
    paced = CallReport(url="ws://x", stream_sid="MZ", call_sid="CA", gap_p50_ms=20.0, gap_p99_ms=21.0,
                       gap_max_dev_ms=1.0)
    assert verdict_lines(paced)[-1].endswith(": on time")
    assert "media gaps p50 20.0 ms" in "\n".join(_summary(paced))
