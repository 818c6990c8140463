"""Run the Hetzner Cloud API sandbox.

    hcloud-sandbox up --project demo:demo-token:20 --port 8080            (foreground; Ctrl-C stops)
    hcloud-sandbox up --state-file s.json --url-file url --daemon         (background, pid file)
    hcloud-sandbox down                                                   (stops the daemon)

`python -m hcloud_sandbox [up] ...` is the same; without a sub-command it means `up`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import Project, Sandbox, generate_world, projects_from_fixture
from .backend import Backend, RecordBackend
from .state import load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hcloud-sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    up = sub.add_parser("up", help="start the sandbox")
    up.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback)")
    up.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    up.add_argument("--project", action="append", default=[], metavar="NAME:TOKEN[:SERVERS[:NETWORKS]]",
                    help="a project with a generated world (repeatable)")
    up.add_argument("--fixture", type=Path, help="JSON file with {'projects': [...]} (see projects_from_fixture)")
    up.add_argument("--state-file", type=Path,
                    help="keep every project here (JSON, rewritten after each write); when it exists it "
                         "defines the projects and --project/--fixture are ignored")
    up.add_argument("--backend", choices=("record", "docker"), default="record",
                    help="record: API records only (default); docker: servers are containers")
    up.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    up.add_argument("--legacy-datacenter", action="store_true",
                    help="serve the removed `datacenter` object on servers and Primary IPs (for older clients)")
    up.add_argument("--action-polls", type=int, default=2, help="reads that see an action running (default 2)")
    up.add_argument("--action-seconds", type=float, default=0.5,
                    help="or this long, whichever a client sees first (default 0.5)")
    up.add_argument("--url-file", type=Path, help="write the API URL here once listening")
    up.add_argument("--daemon", action="store_true", help="run in the background; see --pid-file")
    up.add_argument("--pid-file", type=Path, default=Path("hcloud-sandbox.pid"))
    up.add_argument("--log-file", type=Path, help="the daemon's output (default: PID file + .log)")
    down = sub.add_parser("down", help="stop a sandbox started with --daemon")
    down.add_argument("--pid-file", type=Path, default=Path("hcloud-sandbox.pid"))
    return parser


def make_backend(name: str) -> Backend:
    """The record backend, or DockerBackend imported only when asked for (it needs Docker)."""
    if name == "record":
        return RecordBackend()
    try:
        module = importlib.import_module(".docker_backend", __package__)
        return module.DockerBackend()
    except Exception as exc:  # noqa: BLE001 - any failure to load it is reported the same way
        raise SystemExit(f"hcloud-sandbox: --backend docker is not available: "
                         f"hcloud_sandbox.docker_backend could not be loaded ({type(exc).__name__}: {exc})") from exc


def _projects(args: argparse.Namespace, parser: argparse.ArgumentParser, backend: Backend) -> list[Project]:
    if args.state_file and args.state_file.exists():
        return [Project(p["name"], p["token"], p["world"], rate_limit=p["rate_limit"], tokens=float(p["rate_limit"]))
                for p in load(args.state_file, backend)]
    projects: list[Project] = []
    if args.fixture:
        projects.extend(projects_from_fixture(json.loads(args.fixture.read_text())))
    for index, spec in enumerate(args.project):
        fields = spec.split(":")
        if len(fields) < 2 or not all(fields[:2]):
            parser.error(f"--project {spec!r}: expected NAME:TOKEN[:SERVERS[:NETWORKS]]")
        try:
            count = int(fields[2]) if len(fields) > 2 else 10
            nets = int(fields[3]) if len(fields) > 3 else 2
        except ValueError:
            parser.error(f"--project {spec!r}: SERVERS and NETWORKS must be integers")
        projects.append(Project(fields[0], fields[1], generate_world(count, nets, seed=len(projects) + index + 1,
                                                                     prefix=fields[0])))
    if not projects:
        parser.error("no project: give --project, --fixture or an existing --state-file")
    return projects


def _daemonize(argv: list[str], args: argparse.Namespace) -> int:
    """Start `up` (without --daemon) in its own session; return once it listens."""
    url_file = args.url_file or args.pid_file.with_name(args.pid_file.name + ".url")
    log_file = args.log_file or args.pid_file.with_name(args.pid_file.name + ".log")
    url_file.unlink(missing_ok=True)
    child_args = [a for a in argv if a != "--daemon"]
    if args.url_file is None:
        child_args += ["--url-file", str(url_file)]
    with open(log_file, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "hcloud_sandbox", *child_args], stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                     str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")]))})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None and not url_file.exists():
        time.sleep(0.05)
    if not url_file.exists():
        child.kill()
        print(f"hcloud-sandbox: the daemon did not start; see {log_file}", file=sys.stderr)
        return 1
    args.pid_file.write_text(f"{child.pid}\n")
    print(url_file.read_text().strip())
    return 0


def down(pid_file: Path) -> int:
    """SIGTERM the daemon, wait (bounded) until it is gone, remove the PID file."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"hcloud-sandbox: no running sandbox recorded in {pid_file}", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return 0
        time.sleep(0.1)
    print(f"hcloud-sandbox: process {pid} did not stop within 40 s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("up", "down", "-h", "--help"):
        argv = ["up", *argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "down":
        return down(args.pid_file)
    if args.daemon:
        return _daemonize(argv[1:], args)
    backend = make_backend(args.backend)
    projects = _projects(args, parser, backend)
    sandbox = Sandbox(projects, latency_ms=args.latency_ms, legacy_datacenter=args.legacy_datacenter,
                      backend=backend, state_file=args.state_file, action_polls=args.action_polls,
                      action_seconds=args.action_seconds)
    try:
        url = sandbox.serve(args.host, args.port)
    except OSError as exc:
        print(f"hcloud_sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if args.url_file:
        tmp = args.url_file.with_suffix(".tmp")
        tmp.write_text(url + "\n")
        tmp.replace(args.url_file)
    print(f"hcloud sandbox listening on {url} ({', '.join(f'{p.name}: {len(p.world.servers)} servers' for p in projects)})",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
