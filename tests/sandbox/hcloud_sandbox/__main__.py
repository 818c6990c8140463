"""Run the Hetzner Cloud API sandbox in the foreground.

    python -m hcloud_sandbox --project demo:demo-token:20 --port 8080
    python -m hcloud_sandbox --fixture world.json --url-file /tmp/url --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from . import Project, Sandbox, generate_world, projects_from_fixture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hcloud_sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--project", action="append", default=[], metavar="NAME:TOKEN[:SERVERS[:NETWORKS]]",
                        help="a project with a generated world (repeatable)")
    parser.add_argument("--fixture", type=Path, help="JSON file with {'projects': [...]} (see projects_from_fixture)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    parser.add_argument("--legacy-datacenter", action="store_true",
                        help="serve the removed `datacenter` object on servers (for older clients)")
    parser.add_argument("--url-file", type=Path, help="write the API URL here once listening")
    args = parser.parse_args(argv)

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
        parser.error("no project: give --project or --fixture")

    sandbox = Sandbox(projects, latency_ms=args.latency_ms, legacy_datacenter=args.legacy_datacenter)
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
