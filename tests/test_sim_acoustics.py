"""The simulated caller's room (sans-IO): speakerphone echo, noise beds, coughs, the mixer."""
import math
import random
import statistics

import pytest

from voicebridge.audio.mulaw import FRAME_BYTES, SILENCE_FRAME, dbfs, decode, encode
from voicebridge.dev.sim import Acoustics, Cough, NoiseBed, Speakerphone, acoustics, cough, format_script, parse_script
from voicebridge.dev.sim.caller import _acoustics, _build_parser, main
from voicebridge.dev.sim.runner import ScriptRunner
from voicebridge.dev.sim.sounds import resolve


def _tone(hz, n, amp=10000):
    return encode([round(amp * math.sin(2 * math.pi * hz * i / 8000)) for i in range(n)])


def _level(samples):
    """dBFS of int16 samples (RMS)."""
    return 20 * math.log10(math.sqrt(sum(v * v for v in samples) / len(samples)) / 32768)


def _frames(data, size=FRAME_BYTES):
    return [data[i:i + size] for i in range(0, len(data), size)]


def _through(phone, audio, size=FRAME_BYTES):
    out = []
    for chunk in _frames(audio, size):
        out += phone.echo(chunk)
    return out


# -- speakerphone echo -------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [160, 37, 400])
def test_echo_without_filters_is_exactly_delayed_and_scaled(chunk):
    rng = random.Random(5)
    heard = bytes(rng.randrange(256) for _ in range(4000))
    phone = Speakerphone(-15, delay_ms=60, lowpass_hz=None, highpass_hz=None)
    out = _through(phone, heard, chunk)
    gain = 10 ** (-15 / 20)
    expected = [0] * 480 + [round(x * gain) for x in decode(heard)]
    assert len(out) == len(heard)
    assert out == expected[:len(heard)]
    assert phone.delay_samples == 480


def test_echo_delay_line_starts_silent():
    phone = Speakerphone(-20, delay_ms=60)
    loud = _tone(1000, 160 * 10, amp=30000)
    out = _through(phone, loud)
    assert out[:480] == [0] * 480
    assert max(map(abs, out[480:560])) > 500  # and the echo does arrive


def test_echo_of_zero_delay_and_no_loss_is_the_heard_audio():
    heard = _tone(440, 800)
    phone = Speakerphone(0, delay_ms=0, lowpass_hz=None, highpass_hz=None)
    assert _through(phone, heard) == decode(heard)


def test_band_limited_echo_level():
    def echo_level(hz):
        phone = Speakerphone(-20, delay_ms=60)
        heard = _tone(hz, 8000)
        out = _through(phone, heard)
        return _level(out[2000:]) - _level(decode(heard)[2000:])

    assert echo_level(1000) == pytest.approx(-20, abs=2)
    assert echo_level(100) < echo_level(1000) - 6  # a small loudspeaker has no bass
    assert echo_level(3600) < echo_level(1000) - 4  # nor much top
    assert Speakerphone(-30).echo(_tone(1000, 160)) == [0] * 160


@pytest.mark.parametrize("kwargs", [{"echo_db": 6}, {"echo_db": float("nan")}, {"echo_db": -20, "delay_ms": -1},
                                    {"echo_db": -20, "lowpass_hz": 5000},
                                    {"echo_db": -20, "highpass_hz": 3000, "lowpass_hz": 2000}])
def test_speakerphone_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        Speakerphone(**kwargs)


# -- noise beds ----------------------------------------------------------------------------------
def _bed(kind, dbfs_, seed, frames=500):
    bed = NoiseBed(kind, dbfs_, seed=seed)
    return [bed.frame() for _ in range(frames)]


@pytest.mark.parametrize("kind", acoustics.NOISE_KINDS)
def test_noise_level_is_calibrated_and_seeded(kind):
    for seed, level in ((0, -45.0), (7, -30.0)):
        frames = _bed(kind, level, seed)  # 10 s
        assert all(len(f) == 160 and all(isinstance(v, int) for v in f) for f in frames[:5])
        assert _level([v for f in frames for v in f]) == pytest.approx(level, abs=1.0), (kind, seed)
    assert _bed(kind, -40, 3, 50) == _bed(kind, -40, 3, 50)
    assert _bed(kind, -40, 3, 50) != _bed(kind, -40, 4, 50)


def _frame_level_spread(kind):
    return statistics.pstdev(_level(f) for f in _bed(kind, -40, 1))


def test_babble_fluctuates_and_the_fan_is_steady():
    babble, fan = _frame_level_spread("babble"), _frame_level_spread("fan")
    assert babble > 1.5 and babble > 2 * fan, (babble, fan)


def _zero_crossings(samples):
    return sum((a < 0) != (b < 0) for a, b in zip(samples, samples[1:])) / len(samples)


def test_noise_spectra_have_their_character():
    flat = {kind: [v for f in _bed(kind, -40, 2, 100) for v in f] for kind in acoustics.NOISE_KINDS}
    zcr = {kind: _zero_crossings(s) for kind, s in flat.items()}
    assert zcr["white"] > 0.45
    assert zcr["street"] < 0.25 * zcr["white"]  # rumble: low frequencies
    assert zcr["babble"] < 0.4 * zcr["white"]  # voices at 100-250 Hz pitch

    def amplitude(samples, hz):  # one DFT bin over 1 s
        re = sum(v * math.cos(2 * math.pi * hz * i / 8000) for i, v in enumerate(samples))
        im = sum(v * math.sin(2 * math.pi * hz * i / 8000) for i, v in enumerate(samples))
        return 2 * math.hypot(re, im) / len(samples)

    fan = flat["fan"][:8000]
    nearby = statistics.mean(amplitude(fan, hz) for hz in (113, 127, 141, 157, 173))
    assert amplitude(fan, 100) > 4 * nearby  # the hum stands out of the noise


def test_noise_bed_rejects_nonsense():
    with pytest.raises(ValueError):
        NoiseBed("jungle", -40)
    with pytest.raises(ValueError):
        NoiseBed("white", 3)


# -- cough ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ms", [120, 350, 600])
def test_cough_length_and_loudness(ms):
    for seed in range(3):
        audio = acoustics.cough(ms, seed=seed)
        assert len(audio) == ms * 8
        levels = [dbfs(f) for f in _frames(audio)]
        assert max(levels) == pytest.approx(-10, abs=1.5)
        assert max(levels[:2]) > -14  # fast attack
        assert levels[-1] < max(levels) - 12  # and it dies away
    assert acoustics.cough(ms, seed=1) == acoustics.cough(ms, seed=1)
    assert acoustics.cough(ms, seed=1) != acoustics.cough(ms, seed=2)


def test_cough_is_broadband_but_tilted_low():
    samples = decode(acoustics.cough(350))
    assert 0.05 < _zero_crossings(samples) < 0.4


# -- the microphone ------------------------------------------------------------------------------
def test_no_acoustics_sends_the_caller_frame_unchanged():
    room = Acoustics()
    assert not room.active
    frame = bytes(range(160))
    assert room.frame(frame, _tone(1000, 160)) is frame
    assert room.frame(SILENCE_FRAME, b"") is SILENCE_FRAME


def test_mix_is_caller_plus_delayed_echo_in_lockstep():
    gain = 10 ** (-20 / 20)
    room = Acoustics(Speakerphone(-20, delay_ms=40, lowpass_hz=None, highpass_hz=None))
    heard = _tone(700, 160 * 10, amp=20000)
    caller = _tone(300, 160 * 10, amp=3000)
    sent = b"".join(room.frame(c, h) for c, h in zip(_frames(caller), _frames(heard)))
    echo = [0] * 320 + [round(x * gain) for x in decode(heard)]
    assert sent == encode([c + e for c, e in zip(decode(caller), echo)])


def test_echo_settles_one_frame_behind_when_the_first_tick_heard_nothing():
    # The live caller's first tick has heard nothing, later ticks about one frame each (jitter).
    gain = 10 ** (-20 / 20)
    room = Acoustics(Speakerphone(-20, delay_ms=60, lowpass_hz=None, highpass_hz=None))
    heard = _tone(1000, 800, amp=20000)
    sizes = [0, 170, 150, 160, 165, 155]
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(heard[pos:pos + size])
        pos += size
    sent = b"".join(room.frame(SILENCE_FRAME, chunk) for chunk in chunks)
    assert len(sent) == 160 * len(sizes)
    echo = [0] * (160 + 480) + [round(x * gain) for x in decode(heard)]
    assert sent == encode(echo[:len(sent)])


def test_mixing_clips_instead_of_wrapping():
    room = Acoustics(Speakerphone(0, delay_ms=0, lowpass_hz=None, highpass_hz=None))
    loud = bytes([0x80]) * 160  # +32124, the largest mu-law value
    sent = room.frame(loud, loud)
    assert decode(sent) == [32124] * 160  # 64248 saturates; wrapping would have gone negative
    quiet_caller = bytes([0x00]) * 160  # -32124
    assert decode(room.frame(quiet_caller, quiet_caller)) == [-32124] * 160


def test_noise_is_added_to_the_caller():
    room = Acoustics(noise=NoiseBed("white", -30, seed=1))
    sent = [room.frame(SILENCE_FRAME, SILENCE_FRAME) for _ in range(100)]
    assert _level([v for f in sent for v in decode(f)]) == pytest.approx(-30, abs=1)
    speech = _tone(200, 160, amp=10000)
    assert dbfs(room.frame(speech, b"")) == pytest.approx(dbfs(speech), abs=0.5)


# -- the cough step and the command line ---------------------------------------------------------
def test_cough_step_parses_formats_and_resolves():
    steps = parse_script("say:I have a cough, cough,cough:500, click")
    assert steps[1:3] == [cough(), Cough(500)] and steps[1] == Cough(350)
    assert steps[0].text == "I have a cough"
    assert parse_script(format_script(steps)) == steps
    assert format_script([cough(120)]) == "cough:120"
    for bad in ("cough:0", "cough:-5", "cough:loud"):
        with pytest.raises(ValueError):
            parse_script(bad)
    audio = resolve([Cough(350), Cough(120)])
    assert len(audio[0]) == 2880 and audio[0][:2800] == acoustics.cough(350)  # padded to whole frames
    assert len(audio[1]) == 960


def test_runner_plays_a_cough_like_a_click():
    steps = [Cough(100)]
    runner = ScriptRunner(steps, resolve(steps))
    frames, events = [], []
    for k in range(20):
        tick = runner.tick(k * 20, False)
        events += [name for name, _ in tick.events]
        if tick.done:
            break
        frames.append(tick.frame)
    assert b"".join(frames) == acoustics.cough(100)
    assert events == ["step", "cough", "hangup"]


def test_cli_builds_the_room():
    parse = _build_parser().parse_args
    assert _acoustics(parse(["ws://x"])) is None
    room = _acoustics(parse(["ws://x", "--echo-db", "-20", "--echo-delay-ms", "80", "--noise", "babble",
                             "--noise-dbfs", "-40", "--seed", "3"]))
    assert room.echo.echo_db == -20 and room.echo.delay_ms == 80
    assert (room.noise.kind, room.noise.dbfs, room.noise.seed) == ("babble", -40, 3)
    assert _acoustics(parse(["ws://x", "--noise", "fan"])).echo is None
    assert main(["ws://127.0.0.1:9/media", "--echo-db", "20"]) == 2  # refused before dialing
    with pytest.raises(SystemExit):
        parse(["ws://x", "--noise", "jungle"])
