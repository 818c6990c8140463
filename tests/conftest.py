"""Make the collection importable as ansible_collections.anvil.hetzner from the checkout, and the
Hetzner API sandbox (tests/sandbox/hcloud_sandbox) importable as hcloud_sandbox."""

from __future__ import annotations

import builtins
import faulthandler
import os
import signal
import socket
import sys
import traceback
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


# -- no test leaves a thread waiting on a socket that was closed ------------------------------------
# close() does not wake a thread blocked in accept() or recv() on that socket: the kernel keeps the
# socket for the call (a listener stays listening), and when the call is restarted (the process is
# stopped and continued, for one) it runs again on the descriptor's number, by then another socket
# of the process. CI saw test_host_probe's fake Docker engine answer the API sandbox of a later test
# that way ("HTTP 404: X"). A test's server stops with shutdown() and a join before close().
_BLOCKING_CALLS = {"accept", "recv", "recv_into", "recvfrom", "recvmsg", "readinto"}

_REPORTED: set[int] = set()  # a thread left behind fails the test that left it, not every later one


def _threads_on_closed_sockets() -> dict[int, str]:
    found = {}
    for ident, frame in sys._current_frames().items():
        if ident in _REPORTED or frame.f_code.co_name not in _BLOCKING_CALLS:
            continue
        owner = frame.f_locals.get("self")
        sock = owner if isinstance(owner, socket.socket) else getattr(owner, "_sock", None)
        if isinstance(sock, socket.socket) and sock.fileno() == -1:
            found[ident] = (f"thread {ident} in {frame.f_code.co_name}() of a closed socket:\n"
                            + "".join(traceback.format_stack(frame)))
    return found


@pytest.fixture(autouse=True)
def _no_thread_left_on_a_closed_socket():
    yield
    deadline = time.monotonic() + 2  # a thread that shutdown() woke may still be on its way out
    while (left := _threads_on_closed_sockets()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        _REPORTED.update(left)
        pytest.fail("a thread is still blocked on a socket the test closed (stop it with shutdown() "
                    "and join it before close()):\n" + "\n".join(left.values()), pytrace=False)


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
