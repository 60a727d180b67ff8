"""The simulated caller's speech corpus: real synthetic speech, committed as package data.

Each clip is espeak-ng speech (several accents, voice variants, rates and pitches, whispers,
soft and unvoiced onsets) through a phone band, as raw 8 kHz mu-law; ``manifest.json`` names
its category, label, text and voice. :mod:`voicebridge.dev.sim.corpus.make_corpus` regenerates it
(needs espeak-ng); everything else only reads it, so it needs no espeak-ng.

espeak-ng's ``+whisper`` variant whispers in every accent but ``en-gb``, where it stays partly
voiced (its clips' periodicity is about twice the others'); they are kept, labelled as the
variant asked for.

Labels: ``interrupt`` (the caller means to take the turn: "wait", "stop", a question, also
whispered, soft or with an unvoiced onset), ``backchannel`` ("mm-hm", "yeah": the agent should
go on) and ``talk`` (long sentences: material for babble and a TV in the room).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

PACKAGE = "voicebridge.dev.sim.corpus"


@dataclass(frozen=True)
class Clip:
    """One corpus clip as the manifest describes it."""

    name: str
    category: str  # interruption, whisper, soft, unvoiced, backchannel, question, talk
    label: str  # interrupt, backchannel, talk
    text: str
    voice: str  # espeak-ng voice and variant, e.g. "en-gb-scotland+f2"
    rate: int  # words per minute
    pitch: int  # espeak-ng pitch 0-99
    level_dbfs: float  # level of the active speech
    ms: int

    def audio(self) -> bytes:
        """The clip's 8 kHz mu-law bytes."""
        return load(self.name)


@lru_cache(maxsize=1)
def clips() -> tuple[Clip, ...]:
    """Every clip of the manifest, in its order."""
    raw = json.loads(resources.files(PACKAGE).joinpath("manifest.json").read_text())
    return tuple(Clip(**entry) for entry in raw["clips"])


def categories() -> list[str]:
    return sorted({c.category for c in clips()})


def by_category(category: str) -> list[Clip]:
    """The clips of one category (ValueError for an unknown one)."""
    found = [c for c in clips() if c.category == category]
    if not found:
        raise ValueError(f"no corpus category {category!r} (known: {', '.join(categories())})")
    return found


def clip(name: str) -> Clip:
    for c in clips():
        if c.name == name:
            return c
    raise KeyError(f"no corpus clip {name!r}")


@lru_cache(maxsize=256)
def load(name: str) -> bytes:
    """A clip's mu-law bytes by name."""
    return resources.files(PACKAGE).joinpath(f"{name}.ulaw").read_bytes()


def pick(category: str, seed: int) -> Clip:
    """One clip of ``category``, chosen by ``seed`` (the same seed, the same clip)."""
    return random.Random(seed).choice(by_category(category))


def resolve(ref: str, seed: int = 0) -> Clip:
    """A clip from a script reference: a clip name, or ``category`` / ``category:N`` (seeded pick)."""
    name, _, index = ref.partition(":")
    if name in categories():
        pool = by_category(name)
        return pool[int(index) % len(pool)] if index else pick(name, seed)
    return clip(ref)
