"""HeldTurns: the model's turns holding a held voice (sans-IO)."""
from __future__ import annotations

from voicebridge.audio.held_agent import HeldAgent
from voicebridge.audio.held_turns import HeldTurns


def test_a_turn_keeps_its_streamed_words_and_its_span_from_the_first_onset():
    turns = HeldTurns()
    turns.voice(3.0, 0.2)
    turns.voice(3.6, 0.1)  # a second utterance joined the hold
    turns.voice(3.6, 0.3)  # ... its runs so far: the latest counts
    assert round(turns.speech_s, 6) == 0.5
    assert "item_1" not in turns and not turns
    turns.committed("item_1", 4.2)
    assert "item_1" in turns and turns
    assert round(turns.span_s("item_1"), 6) == 1.2  # from the first onset: never less than the voice
    assert turns.span_s("item_unknown") == float("inf")
    assert turns.said("item_1", "wa", final=False) == "wa"
    assert turns.said("item_1", "it ", final=False) == "wait "
    assert turns.said("item_1", "Wait.", final=True) == "Wait."
    turns.done("item_1")
    assert "item_1" not in turns and not turns


def test_a_new_hold_forgets_the_last_ones_voice_and_turns():
    """(Each hold is a ``HeldAgent`` of its own, with turns of its own.)"""
    first = HeldAgent(1.0, 0, 0.3)
    first.turns.voice(1.0, 0.4)
    first.turns.committed("item_1", 1.5)
    second = HeldAgent(5.0, 0, 0.3)
    assert not second.turns and second.turns.speech_s == 0
    second.turns.voice(5.0, 0.2)
    second.turns.committed("item_3", 5.5)
    assert second.turns.span_s("item_3") == 0.5 and "item_1" in first.turns
