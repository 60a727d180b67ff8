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


def test_the_warning_names_the_importing_line_and_a_missing_module_is_not_moved() -> None:
    import importlib

    importlib.import_module("voicebridge.call.ending")  # loaded, so only the alias is new
    sys.modules.pop("voicebridge.callcontrol", None)
    with pytest.warns(DeprecationWarning) as caught:
        importlib.import_module("voicebridge.callcontrol")
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module("voicebridge.sim")  # the parent's own alias warns (once per process)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("voicebridge.sim.no_such_module")


def test_simulated_call_is_still_importable_from_the_example_app_module() -> None:
    from voicebridge.dev.appcall import simulated_call

    with pytest.warns(DeprecationWarning) as caught:
        from voicebridge.app import simulated_call as old
    said = [str(w.message) for w in caught]
    assert any("voicebridge.dev.appcall.simulated_call" in m for m in said), said
    assert old is simulated_call


LAYERS = {"carrier": 1, "model": 1, "audio": 1, "call": 2, "serving": 3, "dev": 4}
"""Each layer imports only the layers below it (the offline stack, on top, may import them all)."""
LAZY_DEV_IMPORTS = {("serving/app.py", "voicebridge.dev.local.server"), ("serving/app.py", "voicebridge.dev.appcall")}
"""The example app starts the local backend only when asked (LOCAL_BACKEND=1), and keeps 0.1's
``simulated_call`` name for a release: both import the offline stack inside a function."""


def _imports(path, package: list[str]):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ((package[:len(package) - node.level + 1] if node.level else [])
                    + (node.module.split(".") if node.module else []))
            yield from ([*base, a.name] for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name.split(".") for a in node.names)


def test_every_layer_imports_only_the_layers_below_it() -> None:
    import pathlib

    root = pathlib.Path(voicebridge.__file__).parent
    upward = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in LAYERS or parts[0] == "dev":
            continue
        for target in _imports(path, ["voicebridge", *parts[:-1]]):
            if len(target) > 1 and target[0] == "voicebridge" and target[1] in LAYERS and target[1] != parts[0]:
                module, where = ".".join(target), "/".join(parts)
                lazy = any(where == file and module.startswith(allowed) for file, allowed in LAZY_DEV_IMPORTS)
                if LAYERS[target[1]] >= LAYERS[parts[0]] and not lazy:
                    upward.append(f"{'/'.join(parts)} imports {module}")
    assert upward == []
