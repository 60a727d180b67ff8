"""Caller script model: compact parser, constructors and the sans-IO runner."""
import pytest

from voicebridge.audio.mulaw import SILENCE_FRAME
from voicebridge.dev.sim import script as s
from voicebridge.dev.sim.runner import ScriptRunner
from voicebridge.dev.sim.sounds import babble, click_noise, prompt_for_text, resolve


def test_parses_the_documented_example():
    steps = s.parse_script("wait_agent:10000,wait_quiet:800,say:What can you tell me?,wait_agent:5000,"
                           "silence:3000,interrupt:Stop please,wait_quiet:1000,hangup")
    assert steps == [
        s.wait_for_agent(10000), s.wait_for_agent_silence(800), s.say("What can you tell me?"),
        s.wait_for_agent(5000), s.silence(3000), s.interrupt("Stop please"),
        s.wait_for_agent_silence(1000), s.hangup(),
    ]


def test_commas_inside_text_and_options():
    steps = s.parse_script("say:Well, hello there, friend, click, click:80 ,interrupt:1500:Stop, now,"
                           "wait_quiet:500:9000, say:@caller_stop,say:me.wav,wait_for_agent")
    assert steps == [
        s.say("Well, hello there, friend"), s.click(40), s.click(80),
        s.interrupt("Stop, now", after_ms=1500), s.wait_for_agent_silence(500, 9000),
        s.say(prompt="caller_stop"), s.say(wav="me.wav"), s.wait_for_agent(10000),
    ]


def test_default_script_round_trips():
    steps = s.parse_script(s.DEFAULT_SCRIPT)
    assert any(isinstance(x, s.Interrupt) for x in steps) and isinstance(steps[-1], s.Hangup)
    assert s.parse_script(s.format_script(steps)) == steps


@pytest.mark.parametrize("bad", ["", "dance:3", "silence", "silence:-5", "silence:abc", "say:", "hangup:now",
                                 "wait_quiet:x"])
def test_rejects_bad_scripts(bad):
    with pytest.raises(ValueError):
        s.parse_script(bad)


def test_constructors_need_a_source():
    with pytest.raises(ValueError):
        s.say()
    with pytest.raises(ValueError):
        s.interrupt(after_ms=10)


def test_bundled_prompts_cover_the_default_phrases():
    for text in ["What can you tell me?", "stop please", "Thank you, goodbye."]:
        assert prompt_for_text(text) is not None
    audio = resolve([s.say(prompt="caller_stop"), s.click(40), s.silence(10)])
    assert len(audio[0]) % 160 == 0 and len(audio[0]) > 4000
    assert len(audio[1]) == 320 and audio[2] is None


def _run(steps, audio, audible_at, limit=2000):
    """Drive a runner; ``audible_at(ms)`` says whether agent audio is heard in that tick."""
    r = ScriptRunner(steps, audio)
    frames, events = [], []
    for k in range(limit):
        tick = r.tick(k * 20, audible_at(k * 20))
        events += [(k * 20, name, detail) for name, detail in tick.events]
        if tick.done:
            return frames, events
        frames.append(tick.frame)
    raise AssertionError("script did not finish")


def test_runner_wait_say_and_hangup():
    speech = bytes([0x10]) * 480
    steps = [s.wait_for_agent(1000), s.say(audio=speech), s.silence(100), s.hangup()]
    frames, events = _run(steps, resolve(steps), lambda ms: 200 <= ms < 400)
    assert frames[:10] == [SILENCE_FRAME] * 10  # waiting for the agent (heard at 200 ms)
    assert b"".join(frames[10:13]) == speech
    assert frames[13:] == [SILENCE_FRAME] * 5
    names = [(t, n) for t, n, _ in events if n != "step"]
    assert names == [(200, "caller_speech_start"), (260, "caller_speech_stop"), (360, "hangup")]


def test_runner_wait_timeouts_are_reported():
    steps = [s.wait_for_agent(100), s.wait_for_agent_silence(100, 200)]
    frames, events = _run(steps, resolve(steps), lambda ms: ms >= 120)
    assert len(frames) == 15
    assert [n for _, n, _ in events].count("wait_timeout") == 2
    assert events[-1][1:] == ("hangup", {"reason": "end_of_script"})


def test_runner_wait_quiet_waits_for_agent_silence():
    steps = [s.wait_for_agent_silence(200), s.hangup()]
    frames, _ = _run(steps, resolve(steps), lambda ms: ms < 500)
    # agent heard until 480 ms; quiet counted from 500 ms; 200 ms later = tick 35
    assert len(frames) == 35


def test_runner_interrupt_onset_after_agent_starts():
    steps = [s.interrupt(audio=bytes([0x10]) * 320, after_ms=100), s.hangup()]
    frames, events = _run(steps, resolve(steps), lambda ms: ms >= 300)
    onset = [(t, d) for t, n, d in events if n == "interrupt"]
    assert onset == [(400, {"agent_talking": True})]
    assert frames[20] == bytes([0x10]) * 160 and frames[19] == SILENCE_FRAME


def test_runner_interrupt_speaks_anyway_after_timeout():
    steps = [s.interrupt(audio=bytes([0x10]) * 160, timeout_ms=100)]
    _, events = _run(steps, resolve(steps), lambda ms: False)
    assert ("interrupt", {"agent_talking": False}) in [(n, d) for _, n, d in events]


def test_sounds_are_deterministic_and_loud():
    assert click_noise(40) == click_noise(40)
    assert babble(500) == babble(500) and len(babble(500)) == 4000


def test_speech_without_espeak_falls_back_to_prompts_then_babble(monkeypatch):
    from voicebridge.dev import tts
    from voicebridge.dev.sim import sounds

    monkeypatch.setattr(tts, "speak", lambda *a, **k: None)
    assert sounds.speech_audio(s.say("What can you tell me?")) == tts.load_prompt("caller_question")
    buzz = sounds.speech_audio(s.say("Something nobody bundled"))
    assert buzz == babble(len("Something nobody bundled") * 65)


def test_a_wait_for_the_agent_that_hears_nothing_is_dead_air():
    steps = [s.wait_for_agent(200), s.hangup()]
    _, events = _run(steps, resolve(steps), lambda ms: False)
    assert ("wait_timeout", {"step": "wait_agent:200", "dead_air_ms": 200}) in [(n, d) for _, n, d in events]


def test_a_tool_step_spells_the_tool_on_the_keypad():
    from voicebridge.dev.sim.script import parse_script

    assert parse_script("tool:lookup_order:1234") == [s.dtmf("*566587067337*1234#", 80)]
    assert parse_script("tool:end_call") == [s.dtmf("*36302255#", 80)]
    for bad in ("tool:", "tool:look up", "tool:lookup_order:12a"):
        with pytest.raises(ValueError, match="bad script item"):
            parse_script(bad)


def test_caller_speaks_corpus_clips_and_makes_room_sounds():
    from voicebridge.dev.sim import corpus
    text = "say:#backchannel:0,sound:knock:1,interrupt:800:#whisper_04_0,say:#question"
    steps = s.parse_script(text)
    assert steps == [s.say(clip="backchannel:0"), s.sound("knock", 1), s.interrupt(clip="whisper_04_0", after_ms=800),
                     s.say(clip="question")]
    assert s.parse_script(s.format_script(steps)) == steps
    audio = resolve(steps)
    first = corpus.by_category("backchannel")[0].audio()
    assert audio[0][:len(first)] == first and len(audio[0]) % 160 == 0
    assert audio[2].startswith(corpus.load("whisper_04_0"))
    assert corpus.resolve("question").audio() == audio[3][:len(corpus.resolve("question").audio())]
    frames, events = _run(steps[:2], audio[:2], lambda ms: False)
    assert [n for _, n, _ in events if n not in ("step", "hangup")] == ["caller_speech_start", "caller_speech_stop",
                                                                          "knock"]
    with pytest.raises(ValueError):
        s.parse_script("sound:trumpet")


def test_cli_room_echo_model_builds_the_loudspeaker_chain():
    from voicebridge.dev.sim.caller import _acoustics, _build_parser
    from voicebridge.dev.sim.room import LoudspeakerEcho
    args = _build_parser().parse_args(["ws://x/media", "--echo-db", "-20", "--echo-model", "room", "--noise", "music"])
    mic = _acoustics(args)
    assert isinstance(mic.echo, LoudspeakerEcho) and mic.echo.echo_db == -20 and mic.noise.kind == "music"


def test_voicebridge_call_help_lists_every_step_the_parser_takes():
    """A new user met ``--script`` with only a module path to read: ``voicebridge call --help`` now
    lists the steps, every command name the parser knows among them."""
    from voicebridge.dev.sim.caller import _build_parser

    text = _build_parser().format_help()
    assert "script steps (--script)" in text and s.DEFAULT_SCRIPT in text
    missing = [name for name in set(s._ALIASES.values()) if f"{name}:" not in text and f"{name}[" not in text
               and f" {name} " not in f" {text} ".replace("\n", " ")]
    assert not missing, missing
