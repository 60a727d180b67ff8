"""Installed without extras: the README's mount works; a missing extra names its pip install.

Each case runs in a fresh interpreter with the optional packages hidden by a meta-path blocker,
as if they had never been installed.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCKER = """
import sys
HIDDEN = {hidden!r}

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def run_hidden(hidden: tuple[str, ...], body: str) -> subprocess.CompletedProcess:
    code = BLOCKER.format(hidden=hidden) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_readme_mount_works_without_prometheus_client_and_metrics_say_what_to_install() -> None:
    proc = run_hidden(("prometheus_client",), """
        import os
        from flask import Flask
        from voicebridge import BridgeConfig, VoiceBridge

        app = Flask(__name__)
        os.environ["OPENAI_API_KEY"], os.environ["TWILIO_AUTH_TOKEN"] = "sk-test", "tok-test"
        bridge = VoiceBridge(app, BridgeConfig(api_key=os.environ["OPENAI_API_KEY"]),
                             auth_token=os.environ["TWILIO_AUTH_TOKEN"])
        client = app.test_client()
        assert client.post("/voice", data={"CallSid": "CA1"}).status_code == 403  # signatures checked
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 501, metrics.status_code
        print(metrics.get_data(as_text=True).strip())
        assert "prometheus_client" not in sys.modules
        try:
            VoiceBridge(Flask("asked"), BridgeConfig(), metrics=True)
        except ImportError as exc:
            print(exc)
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Prometheus metrics are off") and "pip install 'prometheus-client>=0.17' (voicebridge's 'metrics' extra)" in lines[0]
    assert lines[1] == ("Prometheus metrics (/metrics) needs the 'prometheus_client' package: "
                        "pip install 'prometheus-client>=0.17' (voicebridge's 'metrics' extra)")


def test_a_missing_twilio_package_names_the_pip_install() -> None:
    proc = run_hidden(("twilio", "prometheus_client"), """
        import voicebridge
        try:
            voicebridge.VoiceBridge
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == ("MissingExtra voicebridge's Flask integration (TwiML, X-Twilio-Signature) needs the "
                                   "'twilio' package: pip install 'twilio>=9' (voicebridge's 'twilio' extra)")


def test_each_hint_names_the_requirement_its_extra_states_in_setup_cfg() -> None:
    """The hint names packages, not ``voicebridge[extra]`` (that name on PyPI is another project):
    so each must be what setup.cfg's extra says, or a hint would install something else."""
    import configparser

    from voicebridge.extras import EXTRAS, PACKAGES, install_hint

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {name: [r.strip() for r in value.splitlines() if r.strip() and not r.strip().startswith("#")]
              for name, value in cfg["options.extras_require"].items()}
    assert set(PACKAGES) == set(EXTRAS)
    for module, requirement in PACKAGES.items():
        assert requirement in extras[EXTRAS[module]], (module, requirement, extras[EXTRAS[module]])
        assert install_hint(module) == f"pip install '{requirement}' (voicebridge's {EXTRAS[module]!r} extra)"
        assert "voicebridge[" not in install_hint(module)


def test_no_message_tells_users_to_install_voicebridge_by_name() -> None:
    """Hints written by hand (a log line, a printed note) go through ``install_hint`` too."""
    said = [f"{path.relative_to(ROOT)}:{n}" for folder in ("voicebridge", "examples")
            for path in sorted((ROOT / folder).rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if "pip install 'voicebridge[" in line or "pip install voicebridge" in line]
    assert said == []
