"""Make the collection importable as ansible_collections.anvil.hetzner from the checkout, and the
Hetzner API sandbox (tests/sandbox/hcloud_sandbox) importable as hcloud_sandbox."""

from __future__ import annotations

import builtins
import faulthandler
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "collections", ROOT / "tests" / "sandbox"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture()
def no_bcrypt(monkeypatch):
    """Python as on a controller without the bcrypt library: importing it fails."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "bcrypt":
            raise ImportError("No module named 'bcrypt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# -- every test is bounded, and what runs is on record ---------------------------------------------
# A test that hangs (a peer that never answers, a process stuck in the kernel) must fail with its
# stack, not eat CI's time: pytest-timeout (requirements-dev.txt) bounds each test, its fixtures
# included, at ANVIL_TEST_TIMEOUT seconds (default 600: the slowest test takes about 120 s on a quiet
# 2-core machine), unless the test names its own bound with @pytest.mark.timeout.
TEST_TIMEOUT = float(os.environ.get("ANVIL_TEST_TIMEOUT", "600"))
# tests/harness/test.sh sets ANVIL_PYTEST_PROGRESS to a file: one line as each test starts and
# ends, so that a run stopped from outside (CI's time limit) says which test was running.
PROGRESS = os.environ.get("ANVIL_PYTEST_PROGRESS")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("timeout") or TEST_TIMEOUT <= 0:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, method="signal"))


def _progress(what: str, nodeid: str) -> None:
    if PROGRESS:
        with open(PROGRESS, "a", encoding="utf-8") as out:
            out.write(f"{time.time():.0f} {what} {nodeid}\n")


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _progress("start", nodeid)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _progress("end", nodeid)


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG[:] = [config]


def _interrupted(signum: int, frame: object) -> None:
    capture = _CONFIG[0].pluginmanager.getplugin("capturemanager") if _CONFIG else None
    if capture is not None:
        capture.suspend_global_capture(in_=False)  # the dump goes to the real stderr, not the test's
    sys.stderr.write(f"\n==> signal {signum}: the stack of every thread\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    raise KeyboardInterrupt(f"signal {signum}")


# A TERM (tests/harness/test.sh's bound on pytest, or CI's time limit through test.sh) ends the run
# as Ctrl-C does, after a dump of every thread's stack: pytest reports the summary so far.
signal.signal(signal.SIGTERM, _interrupted)
