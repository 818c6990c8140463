"""Actions: the API's record of a change, run by a worker thread against the project's backend.

A write answers at once with its action(s) in status `running`. A worker thread then runs each
step's backend call (outside the project lock, so reads go on), and the step's action ends when
the call has returned AND the client has seen it running for `polls` reads or `seconds` have passed,
whichever comes first. So a client polling fast sees `running` (progress rising) a fixed number
of times, a client that never polls still sees the action end, and no test depends on speed.
Record changes that must wait for the machine (a server's status `running`) happen when the
step's action ends: `done` on success, `failed` on error (its code is the BackendError's).

While a resource has a running action, further actions on it answer 423 `locked`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .backend import BackendError
from .errors import locked

if TYPE_CHECKING:
    from .server import Project, Sandbox

Resource = tuple[str, int]  # ("server", 42): the API's resource type and ID


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class Step:
    """One action of a write (or hidden work when `action` is None) and what it changes."""

    action: dict[str, Any] | None
    call: Callable[[], None] | None = None  # the backend work, run without the project lock
    done: Callable[[], None] | None = None  # record changes on success, under the project lock
    failed: Callable[[], None] | None = None  # record changes on error, under the project lock
    hidden_resources: list[Resource] = field(default_factory=list)

    @property
    def resources(self) -> list[Resource]:
        if self.action is None:
            return self.hidden_resources
        return [(r["type"], r["id"]) for r in self.action["resources"]]


@dataclass
class _Running:
    step: Step
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    backend_done: bool = False
    error: dict[str, str] | None = None
    finished: bool = False


class Engine:
    """The actions of one project: creation, locks, workers, and how reads see them progress."""

    def __init__(self, project: Project, sandbox: Sandbox):
        self.project = project
        self.sandbox = sandbox
        self.cond = threading.Condition(project.lock)
        self.running: dict[int, _Running] = {}
        self.busy: Counter[Resource] = Counter()
        self.waiting = 0  # background work not started yet (wait_idle counts it)
        self.by_id = {a["id"]: a for a in project.world.actions}

    # -- creation ------------------------------------------------------------------------------
    def new(self, command: str, resources: list[Resource]) -> dict[str, Any]:
        """A running action on `resources` (the first is the one it is about)."""
        action = {"id": self.project.world.next_id(), "command": command, "status": "running", "progress": 0,
                  "started": now_iso(), "finished": None,
                  "resources": [{"id": ident, "type": kind} for kind, ident in resources], "error": None}
        self.project.world.actions.append(action)
        self.by_id[action["id"]] = action
        return action

    def check_free(self, *resources: Resource) -> None:
        """423 locked when one of the resources has a running action."""
        for kind, ident in resources:
            if self.busy[(kind, ident)]:
                raise locked(kind, ident)

    def start(self, steps: list[Step]) -> None:
        """Lock the steps' resources and run them in order in a worker thread."""
        for step in steps:
            self.busy.update(step.resources)
            if step.action is not None:
                self.running[step.action["id"]] = _Running(step)
        runs = [self.running[s.action["id"]] if s.action is not None else _Running(s) for s in steps]
        thread = threading.Thread(target=self._work, args=(runs,), daemon=True,
                                  name=f"hcloud-sandbox-{self.project.name}")
        thread.start()

    def background(self, resources: list[Resource], call: Callable[[], None]) -> None:
        """Backend work the API shows no action for (a firewall re-applied after a label change):
        it waits until the resources are free, so calls on one resource never overlap."""
        def wait_then_run() -> None:
            with self.cond:
                self.cond.wait_for(lambda: not any(self.busy[r] for r in resources), timeout=600)
                self.waiting -= 1
                self.start([Step(None, call, hidden_resources=list(resources))])
        self.waiting += 1
        threading.Thread(target=wait_then_run, daemon=True).start()

    # -- reads ---------------------------------------------------------------------------------
    def seen(self, action: dict[str, Any]) -> None:
        """A read is about to show `action` (caller holds the lock): count the poll, maybe end it."""
        run = self.running.get(action["id"])
        if run is None or run.finished:
            return
        run.polls += 1
        polls = self.sandbox.action_polls
        action["progress"] = min(90, max(action["progress"], 100 * run.polls // (polls + 1)))
        if run.backend_done and run.polls > polls:
            self._finish(run)
        self.cond.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no action is running (tests, shutdown); False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: not (self.running or self.waiting or any(self.busy.values())),
                                      timeout=timeout)

    # -- the worker ----------------------------------------------------------------------------
    def _work(self, runs: list[_Running]) -> None:
        for index, run in enumerate(runs):
            command = run.step.action["command"] if run.step.action else None
            with self.cond:
                error = self.sandbox.faults.take_action_error(command) if command else None
            if error is None:
                error = self._call(run.step)
            with self.cond:
                run.backend_done = True
                run.error = error
                if run.step.action is None:
                    self._finish(run)
                    continue
                while not run.finished and not self._visible_long_enough(run):
                    self.cond.wait(max(0.01, self.sandbox.action_seconds - (time.monotonic() - run.started)))
                if not run.finished:
                    self._finish(run)
                if error is not None:
                    for later in runs[index + 1:]:
                        later.backend_done, later.error = True, error
                        self._finish(later)
                    return

    @staticmethod
    def _call(step: Step) -> dict[str, str] | None:
        if step.call is None:
            return None
        try:
            step.call()
        except BackendError as exc:
            return {"code": exc.code, "message": exc.message}
        except Exception as exc:  # noqa: BLE001 - a backend bug must end the action, not the worker
            return {"code": "server_error", "message": f"backend failed: {type(exc).__name__}: {exc}"}
        return None

    def _visible_long_enough(self, run: _Running) -> bool:
        return (self.sandbox.closing or run.polls > self.sandbox.action_polls
                or time.monotonic() - run.started >= self.sandbox.action_seconds)

    def _finish(self, run: _Running) -> None:
        """End one step (caller holds the lock): status, record changes, unlock, persist."""
        if run.finished:
            return
        run.finished = True
        step = run.step
        if step.action is not None:
            step.action.update(status="error" if run.error else "success", progress=100, finished=now_iso(),
                               error=run.error)
            self.running.pop(step.action["id"], None)
        hook = step.failed if run.error else step.done
        if hook is not None:
            hook()
        self.busy.subtract(step.resources)
        self.busy = +self.busy
        self.project.changed()
        self.sandbox.persist(self.project)
        self.cond.notify_all()
