"""The layer packages: old flat import paths still work (same module, a warning), and the bridge
never imports the development stack."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import voicebridge
from voicebridge import _moved


def test_an_old_module_path_is_the_same_module_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match="voicebridge.call.session"):
        import voicebridge.session as old  # noqa: F401
    from voicebridge.call import session

    assert old is session
    assert session.__spec__.name == "voicebridge.call.session"  # the alias did not rename it


def test_an_old_path_inside_a_moved_package_reaches_the_new_one() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from voicebridge.sim.caller import dial
    from voicebridge.dev.sim import caller

    assert dial is caller.dial


def test_names_of_the_old_audio_and_carrier_modules_resolve_with_a_warning() -> None:
    from voicebridge.audio import mulaw
    from voicebridge.carrier import seam

    with pytest.warns(DeprecationWarning, match="voicebridge.audio.mulaw.FRAME_BYTES"):
        assert voicebridge.audio.FRAME_BYTES == mulaw.FRAME_BYTES
    with pytest.warns(DeprecationWarning, match="voicebridge.carrier.seam.safe_id"):
        assert voicebridge.carrier.safe_id is seam.safe_id
    with pytest.raises(AttributeError):
        voicebridge.audio.no_such_name


def test_every_moved_path_names_a_module_that_exists() -> None:
    import importlib.util

    for old in _moved.MOVED:
        new = _moved.new_name(old)
        assert new is not None and importlib.util.find_spec(new) is not None, old


def test_the_bridge_never_imports_the_development_stack() -> None:
    code = ("import sys, voicebridge, voicebridge.serving.flaskext, voicebridge.serving.app; "
            "print(sorted(m for m in sys.modules if m.startswith('voicebridge.dev')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
