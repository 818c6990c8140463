"""tests/harness/lib.sh's hold_lock (with tests/harness/lock.py): one run at a time of the harness's
scripts that share something machine-wide (make demo, make clean, make bench-web on the demo's
sandbox and servers; the e2e; make test). A second run stops before it changes anything and says
who holds the lock; the lock ends with its holder however the holder ends, and nothing the holder
started (a daemon) keeps it. The real scripts are run from a copy of tests/harness in a scratch
root, so that a lock that did not hold could not touch this checkout's demo or caches."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "harness"


@pytest.fixture(name="env")
def fixture_env(tmp_path):
    """An environment whose locks are in tmp_path (ANVIL_LOCK_DIR), short waits, no inherited lock."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANVIL_LOCKS_HELD", "VENV")}
    env.update(ANVIL_LOCK_DIR=str(tmp_path / "locks"), ANVIL_LOCK_WAIT="0.5", VENV=str(tmp_path / "no-venv"))
    return env


@pytest.fixture(name="root")
def fixture_root(tmp_path):
    """A scratch checkout: tests/harness copied, so that ROOT (where scripts remove things) is here."""
    root = tmp_path / "root"
    shutil.copytree(HARNESS, root / "tests" / "harness")
    return root


def script(path: Path, body: str) -> Path:
    path.write_text(f'#!/usr/bin/env bash\n. "{HARNESS}/lib.sh"\n{body}\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def start_holder(tmp_path, env, name="demo", what="the holder", seconds=30, extra=""):
    """A script that takes lock NAME, says so in a file, then sleeps; returns (process, ready file)."""
    ready = tmp_path / f"ready-{name}"
    holder = script(tmp_path / f"holder-{name}.sh",
                    f'hold_lock {name} "{what}"\n{extra}\ntouch "{ready}"\nsleep {seconds}')
    proc = subprocess.Popen([str(holder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 15
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the holder did not take its lock"
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


def second(tmp_path, env, name="demo", what="the second run"):
    """A second script that wants lock NAME; returns (completed process, whether it got past the lock)."""
    marker = tmp_path / f"past-{name}"
    marker.unlink(missing_ok=True)
    run = subprocess.run([str(script(tmp_path / f"second-{name}.sh", f'hold_lock {name} "{what}"\ntouch "{marker}"'))],
                         env=env, capture_output=True, text=True, timeout=30, check=False)
    return run, marker.exists()


def test_a_second_run_stops_before_any_change_and_names_the_holder(tmp_path, env):
    holder = start_holder(tmp_path, env, what="make demo")
    try:
        run, past = second(tmp_path, env, what="make clean")
        assert run.returncode == 1 and not past
        assert "make clean: not started, nothing was changed: make demo (pid " in run.stderr
        assert f"pid {holder.pid}," in run.stderr
        assert "(demo)" in run.stderr
        # another lock is another environment: not refused
        run, past = second(tmp_path, env, name="e2e")
        assert run.returncode == 0 and past, run.stderr
    finally:
        stop(holder)


@pytest.mark.parametrize("end", ["exits", "SIGKILL", "SIGTERM"])
def test_the_lock_ends_with_its_holder_however_it_ends(tmp_path, env, end):
    seconds = 0 if end == "exits" else 30
    holder = start_holder(tmp_path, env, seconds=seconds)
    if end != "exits":
        os.killpg(holder.pid, getattr(signal, end))
    holder.communicate(timeout=10)
    env = dict(env, ANVIL_LOCK_WAIT="5")
    run, past = second(tmp_path, env)
    assert run.returncode == 0 and past, run.stderr


def test_a_daemon_in_a_session_of_its_own_does_not_keep_the_lock(tmp_path, env):
    # a child that outlives the holder in a session of its own (dockerd as lib.sh starts it, the
    # sandbox, ssh's ControlPersist masters), with every descriptor the holder had but its output
    pidfile = tmp_path / "daemon.pid"
    holder = start_holder(tmp_path, env, seconds=0,
                          extra=f'(setsid sleep 60 >/dev/null 2>&1 & echo $! >"{pidfile}")')
    holder.communicate(timeout=10)
    daemon = int(pidfile.read_text())
    try:
        os.kill(daemon, 0)  # still running
        run, past = second(tmp_path, dict(env, ANVIL_LOCK_WAIT="5"))
        assert run.returncode == 0 and past, run.stderr
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_a_step_left_running_by_a_killed_run_keeps_the_lock_until_it_ends(tmp_path, env):
    # the run's script gets SIGTERM (no trap) while a step runs in the foreground: the step goes on,
    # and so does the lock; the next run is told what still runs, and gets the lock once it ended
    ready = tmp_path / "ready"
    holder = subprocess.Popen([str(script(tmp_path / "run.sh", f'hold_lock demo "the holder"\ntouch "{ready}"\nsleep 4'))],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not ready.exists():
        assert time.monotonic() < deadline and holder.poll() is None, "the holder did not take its lock"
        time.sleep(0.05)
    started = time.monotonic()
    time.sleep(1.2)  # (the lock's helper has seen the step: it scans every 0.5 s)
    os.kill(holder.pid, signal.SIGTERM)
    holder.wait(timeout=10)
    run, past = second(tmp_path, env, what="make clean")
    assert run.returncode == 1 and not past
    assert f"pid {holder.pid}, since" in run.stderr and "it ended, its process" in run.stderr, run.stderr
    assert "sleep 4 still runs" in run.stderr, run.stderr
    time.sleep(max(0.0, started + 4 - time.monotonic()))
    run, past = second(tmp_path, dict(env, ANVIL_LOCK_WAIT="5"))
    assert run.returncode == 0 and past, run.stderr


def test_a_holder_may_wait_for_its_children(tmp_path, env):
    # bash's plain `wait` also waits for a process substitution: the lock's helper is not one
    holder = script(tmp_path / "waits.sh", 'hold_lock demo "waits"\nsleep 0.2 &\nwait\necho waited')
    run = subprocess.run([str(holder)], env=env, capture_output=True, text=True, timeout=20, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "waited", run.stderr


def test_a_script_the_holder_runs_has_the_lock_already(tmp_path, env):
    # bench-web runs make demo when there is no demo environment: both take the demo lock
    inner = script(tmp_path / "inner.sh", 'hold_lock demo "inner"\necho inner-ran')
    outer = script(tmp_path / "outer.sh", f'hold_lock demo "outer"\n"{inner}"')
    run = subprocess.run([str(outer)], env=env, capture_output=True, text=True, timeout=20, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "inner-ran", run.stderr


def test_the_lock_files_are_shared_and_name_the_holder(tmp_path, env):
    holder = start_holder(tmp_path, env)
    try:
        lock_dir = tmp_path / "locks"
        assert lock_dir.stat().st_mode & 0o7777 == 0o1777  # every user's runs share the engine and ports
        lock = lock_dir / "demo.lock"
        assert lock.stat().st_mode & 0o777 == 0o644 and "the holder (pid" in lock.read_text()
    finally:
        stop(holder)


def test_by_default_two_runs_with_different_tmpdirs_share_one_lock(tmp_path, env):
    # the default directory (no ANVIL_LOCK_DIR), with a lock name of this test's own in it
    name = f"pytest-{os.getpid()}-{tmp_path.name}"
    default = {k: v for k, v in env.items() if k != "ANVIL_LOCK_DIR"}
    (tmp_path / "t1").mkdir()
    (tmp_path / "t2").mkdir()
    holder = start_holder(tmp_path, dict(default, TMPDIR=str(tmp_path / "t1")), name=name)
    try:
        run, past = second(tmp_path, dict(default, TMPDIR=str(tmp_path / "t2")), name=name)
        assert run.returncode == 1 and not past, run.stderr
        assert f"/tmp/anvil-hetzner-locks/{name}.lock" in run.stderr
    finally:
        stop(holder)
        Path(f"/tmp/anvil-hetzner-locks/{name}.lock").unlink(missing_ok=True)


# (script, its arguments, the locks it takes, what it calls itself)
SCRIPTS = [
    ("demo.sh", [], ["demo"], "make demo"),
    ("demo.sh", ["deploy", "v2"], ["demo"], "make demo (deploy v2)"),
    ("demo-clean.sh", [], ["demo", "e2e", "test"], "make clean"),
    ("bench-web.sh", [], ["demo"], "make bench-web"),
    ("e2e.sh", [], ["e2e"], "the end-to-end test (tests/harness/e2e.sh)"),
    ("test.sh", [], ["test"], "make test"),
    ("bench-site.sh", [], ["bench-site"], "make bench-site"),
    ("bench-roles.sh", [], ["bench-roles"], "make bench-roles"),
    ("bench-deploy.sh", [], ["bench-deploy"], "make bench-deploy"),
]


@pytest.mark.parametrize(("name", "args", "lock", "what"),
                         [(n, a, lock, w) for n, a, locks, w in SCRIPTS for lock in locks],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_each_script_refuses_while_its_environment_is_in_use(tmp_path, env, root, name, args, lock, what):
    generated = root / "inventories" / "sandbox" / "generated"
    generated.mkdir(parents=True)
    (generated / "keep").write_text("the demo's keys\n", encoding="utf-8")
    (root / ".cache").mkdir()
    (root / ".cache" / "keep").write_text("a run's logs\n", encoding="utf-8")
    holder = start_holder(tmp_path, env, name=lock, what="somebody else's run")
    try:
        run = subprocess.run([str(root / "tests" / "harness" / name), *args], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    finally:
        stop(holder)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert f"{what}: not started, nothing was changed: somebody else's run (pid" in run.stderr
    assert "==>" not in run.stderr and "[00:" not in run.stderr, run.stderr  # no step began
    assert (generated / "keep").exists() and (root / ".cache" / "keep").exists()


def test_make_clean_with_its_locks_free_does_remove_what_it_removes(tmp_path, env, root):
    # the control of the test above: the same scratch root, nobody holding a lock
    generated = root / "inventories" / "sandbox" / "generated"
    generated.mkdir(parents=True)
    (generated / "keep").write_text("x\n", encoding="utf-8")
    (root / ".cache").mkdir()
    env = dict(env, PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
    # no Docker engine for this clean: `docker` answers nothing is running
    (tmp_path / "bin").mkdir()
    docker = tmp_path / "bin" / "docker"
    docker.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    docker.chmod(0o755)
    run = subprocess.run([str(root / "tests" / "harness" / "demo-clean.sh")], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert not generated.exists() and not (root / ".cache").exists()


def test_every_script_of_the_lifecycle_takes_a_lock():
    # a new script on the sandbox's lifecycle (fixed ports, projects and names) is in SCRIPTS above,
    # so that it is tested to refuse, and takes its lock before its first step
    listed = {name for name, _args, _locks, _what in SCRIPTS}
    for path in sorted(HARNESS.glob("*.sh")):
        text = path.read_text(encoding="utf-8")
        if "lifecycle.sh" not in text or path.name == "lifecycle.sh":
            continue
        assert path.name in listed, f"{path.name} uses the lifecycle but is not in SCRIPTS"
        first_step = min(i for i in (text.find("lc_setup"), text.find("lc_sandbox_up"), text.find("lc_remove_machines"),
                                     text.find("lc_teardown")) if i >= 0)
        assert 0 <= text.find("hold_lock ") < first_step, f"{path.name} takes no lock before its first step"
