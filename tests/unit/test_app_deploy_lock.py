"""app_deploy's deploy lock (roles/app_deploy/files/app-deploy-lock): `take` as the role runs it (a
detached hold and its outcome in one call), and its parts (a background hold, a wait for its outcome,
a release); a second hold waits and then names the holder; a holder killed or past its lease frees
the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = str(ROOT / "roles/app_deploy/files/app-deploy-lock")


def hold(directory, token, wait=5, lease=60, version="v1"):
    info = json.dumps({"by": "ci@controller", "user": "ci", "controller": "controller", "controller_pid": "42",
                       "version": version})
    return subprocess.Popen([sys.executable, LOCK, "hold", str(directory), token, str(wait), str(lease), info])


def wait(directory, token, seconds=10):
    out = subprocess.run([sys.executable, LOCK, "wait", str(directory), token, str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 10, check=False)
    return out.returncode, json.loads(out.stdout)


def release(directory, token):
    return subprocess.run([sys.executable, LOCK, "release", str(directory), token], timeout=20, check=False).returncode


def test_one_holder_at_a_time_the_second_waits_then_holds(tmp_path):
    first = hold(tmp_path, "a")
    assert wait(tmp_path, "a")[0] == 0
    second = hold(tmp_path, "b", wait=20, version="v2")
    time.sleep(1.5)
    assert not (tmp_path / "b.state").exists()  # still waiting
    assert release(tmp_path, "a") == 0
    assert first.wait(10) == 0
    rc, state = wait(tmp_path, "b")
    assert rc == 0 and state["holder"]["version"] == "v2" and state["holder"]["pid"] == second.pid
    assert release(tmp_path, "b") == 0 and second.wait(10) == 0
    assert sorted(os.listdir(tmp_path)) == ["lock"]


def test_a_short_wait_fails_naming_the_holder(tmp_path):
    first = hold(tmp_path, "a")
    assert wait(tmp_path, "a")[0] == 0
    second = hold(tmp_path, "b", wait=1, version="v2")
    assert second.wait(10) == 1
    rc, state = wait(tmp_path, "b")
    assert rc == 1 and state["state"] == "busy"
    holder = state["holder"]
    assert holder["version"] == "v1" and holder["by"] == "ci@controller" and holder["controller_pid"] == "42"
    assert holder["pid"] == first.pid and holder["since"].endswith("Z") and holder["lease_seconds"] == 60
    assert release(tmp_path, "b") == 0  # a hold that never got the lock: its files go
    assert release(tmp_path, "a") == 0 and first.wait(10) == 0
    assert sorted(os.listdir(tmp_path)) == ["lock"]


def test_a_killed_holder_frees_the_lock(tmp_path):
    first = hold(tmp_path, "a")
    assert wait(tmp_path, "a")[0] == 0
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = hold(tmp_path, "b", wait=5)
    assert wait(tmp_path, "b")[0] == 0
    assert release(tmp_path, "b") == 0 and second.wait(10) == 0


def test_the_lease_bounds_a_run_whose_controller_is_gone(tmp_path):
    first = hold(tmp_path, "a", lease=2)  # nobody ever releases it
    assert wait(tmp_path, "a")[0] == 0
    second = hold(tmp_path, "b", wait=10)
    started = time.monotonic()
    assert wait(tmp_path, "b", seconds=15)[0] == 0
    assert time.monotonic() - started < 6
    assert first.wait(10) == 0
    assert release(tmp_path, "b") == 0 and second.wait(10) == 0


def test_release_of_an_unknown_token_is_a_no_op(tmp_path):
    assert release(tmp_path, "nobody") == 0


def take(directory, token, wait=5, lease=60, version="v1", read=None):
    info = json.dumps({"by": "ci@controller", "user": "ci", "controller": "controller", "controller_pid": "42",
                       "version": version})
    # stdout and stderr are pipes, as the command module's: take returns only when the detached hold
    # holds none of them open
    out = subprocess.run([sys.executable, LOCK, "take", str(directory), token, str(wait), str(lease), info]
                         + ([str(read)] if read is not None else []),
                         capture_output=True, text=True, timeout=wait + 40, check=False)
    return out.returncode, json.loads(out.stdout)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_take_holds_after_it_returned_and_a_second_take_names_the_holder(tmp_path):
    rc, state = take(tmp_path, "a")
    assert rc == 0 and state["state"] == "held"
    holder = state["holder"]["pid"]
    assert pid_alive(holder)  # the hold outlives the call that started it
    assert subprocess.run(["flock", "--nonblock", str(tmp_path / "lock"), "true"], check=False).returncode == 1
    started = time.monotonic()
    rc, busy = take(tmp_path, "b", wait=1, version="v2")
    assert rc == 1 and busy["state"] == "busy" and busy["holder"]["pid"] == holder and busy["holder"]["version"] == "v1"
    assert time.monotonic() - started < 5
    # letting go of a take that never held is immediate; of the holder, within a fraction of a second
    started = time.monotonic()
    assert release(tmp_path, "b") == 0 and release(tmp_path, "a") == 0
    assert time.monotonic() - started < 2
    deadline = time.monotonic() + 5
    while pid_alive(holder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(holder)
    assert sorted(os.listdir(tmp_path)) == ["lock"]
    assert subprocess.run(["flock", "--nonblock", str(tmp_path / "lock"), "true"], check=False).returncode == 0


def test_take_waits_for_a_holder_that_lets_go(tmp_path):
    assert take(tmp_path, "a")[0] == 0
    later = subprocess.Popen([sys.executable, "-c", "import time, subprocess, sys; time.sleep(1.5); "
                              f"subprocess.run([sys.executable, {LOCK!r}, 'release', {str(tmp_path)!r}, 'a'])"])
    started = time.monotonic()
    rc, state = take(tmp_path, "b", wait=20, version="v2")
    assert rc == 0 and state["holder"]["version"] == "v2"
    assert 1.0 < time.monotonic() - started < 10
    assert later.wait(10) == 0
    assert release(tmp_path, "b") == 0


NEWER = '{"live": 2}\n'


def test_take_reads_the_history_once_it_holds_the_lock(tmp_path):
    """The role plans from the history take read: the text as it was once the lock was held (a run that
    held the lock before wrote its release into it), none when there is no history yet, an error
    (never an empty history) when the file is there but cannot be read."""
    locks, history = tmp_path / "locks", tmp_path / "history.json"
    locks.mkdir()
    history.write_text('{"live": 1}\n')
    assert take(locks, "a")[0] == 0
    # the holder writes a new release while b waits; b reads what a left
    writer = tmp_path / "writer.py"
    writer.write_text(
        "import pathlib, subprocess, sys, time\n"
        "time.sleep(1.5)\n"
        f"pathlib.Path({str(history)!r}).write_text({NEWER!r})\n"
        f"subprocess.run([sys.executable, {LOCK!r}, 'release', {str(locks)!r}, 'a'])\n")
    later = subprocess.Popen([sys.executable, str(writer)])
    rc, state = take(locks, "b", wait=20, read=history)
    assert later.wait(10) == 0
    assert rc == 0 and state["read"] == NEWER and "read_error" not in state
    # busy: nothing read
    rc, busy = take(locks, "c", wait=1, read=history)
    assert rc == 1 and busy["state"] == "busy" and "read" not in busy
    assert release(locks, "c") == 0 and release(locks, "b") == 0
    history.unlink()
    rc, state = take(locks, "d", read=history)
    assert rc == 0 and state["read"] is None and "read_error" not in state
    assert release(locks, "d") == 0
    history.mkdir()  # there, but not a file that can be read
    rc, state = take(locks, "e", read=history)
    assert rc == 0 and state["read"] is None and state["read_error"].startswith(str(history))
    assert release(locks, "e") == 0
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe")
    rc, state = take(locks, "f", read=tmp_path / "binary.json")
    assert rc == 0 and state["read"] is None and "read_error" in state
    assert release(locks, "f") == 0
    assert sorted(os.listdir(locks)) == ["lock"]
