"""The committed speech corpus loads from package data and says what its manifest claims."""
from __future__ import annotations

import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.dev.sim import corpus


def test_manifest_lists_every_category_with_several_voices():
    clips = corpus.clips()
    assert len(clips) >= 100
    for category in ("interruption", "backchannel", "whisper", "soft", "unvoiced", "question", "talk"):
        found = corpus.by_category(category)
        assert len({c.voice for c in found}) >= 3, category
    assert {c.label for c in corpus.by_category("backchannel")} == {"backchannel"}
    assert all(c.voice.endswith("+whisper") for c in corpus.by_category("whisper"))
    assert len({c.voice.split("+")[0] for c in clips}) >= 4  # accents
    assert len({c.rate for c in clips}) >= 3 and len({c.pitch for c in clips}) >= 3


def test_clip_audio_matches_its_manifest_length_and_level():
    for c in corpus.by_category("interruption")[:5] + corpus.by_category("soft")[:3]:
        data = c.audio()
        assert abs(len(data) * 1000 // audio.SAMPLE_RATE - c.ms) <= 1
        frames = [data[i:i + 160] for i in range(0, len(data) - 159, 160)]
        loudest = max(audio.dbfs(f) for f in frames)
        assert c.level_dbfs - 3 <= loudest <= c.level_dbfs + 12


def test_references_resolve_by_name_category_and_index():
    first = corpus.by_category("backchannel")[0]
    assert corpus.resolve(first.name) == first
    assert corpus.resolve("backchannel:0") == first
    assert corpus.resolve("whisper", seed=3) == corpus.resolve("whisper", seed=3)
    with pytest.raises(KeyError):
        corpus.resolve("no_such_clip")
