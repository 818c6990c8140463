"""Benchmark: `ansible-inventory --list` with anvil.hetzner.hcloud, hetzner.hcloud and a static file.

For each server count and per-request latency, a fresh Hetzner API sandbox on loopback holds one
project with that many servers spread over two private networks, and three inventories are
timed side by side in the same run:

  ours     anvil.hetzner.hcloud against the sandbox
  hetzner  the hetzner.hcloud inventory bundled in the installed `ansible` package, against the
           same sandbox with its legacy `datacenter` field switched on (that plugin still needs it)
  static   a YAML inventory holding the same hosts, variables and groups (written once per size
           from our output): ansible-core's own cost, the floor

It prints times, ratios and request counts; it asserts nothing (these machines are noisy).

    .venv/bin/python tests/harness/bench-inventory.py [--sizes 100,1000,5000,10000] [--latencies 0,50]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))

from hcloud_sandbox import Project, Sandbox, generate_world  # noqa: E402

BIN = Path(sys.executable).parent


class OutOfMemory(Exception):
    pass


def run_inventory(source: Path, env: dict[str, str], output: Path, timeout: float, yaml_out: bool = False,
                  memory_limit_gb: float | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one `ansible-inventory --list`."""
    args = [str(BIN / "ansible-inventory"), "-i", str(source), "--list", "--output", str(output)]
    if yaml_out:
        args.append("--yaml")

    def limit() -> None:
        if memory_limit_gb:
            size = int(memory_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=source.parent, stdout=subprocess.DEVNULL, stderr=err,
                            preexec_fn=limit)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise SystemExit(f"{source.name}: no result within {timeout:g}s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    peak_mb = usage.ru_maxrss / 1024
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err.seek(0)
        text = err.read().decode(errors="replace")
        # Out of address space shows as MemoryError, or as a C extension "returned NULL" right at the limit.
        near_limit = memory_limit_gb and peak_mb > 0.75 * memory_limit_gb * 1024
        if memory_limit_gb and ("MemoryError" in text or "Cannot allocate memory" in text or code < 0 or near_limit):
            raise OutOfMemory(f"more than {memory_limit_gb:g} GB")
        raise SystemExit(f"{source.name} failed (exit {code}):\n{text[-3000:]}")
    return elapsed, peak_mb


def host_count(path: Path) -> int:
    import json

    return len(json.loads(path.read_text())["_meta"]["hostvars"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,5000,10000")
    parser.add_argument("--latencies", default="0,50", help="milliseconds added to every API request")
    parser.add_argument("--skip-hetzner-above", type=int, default=10**9,
                        help="do not time hetzner.hcloud above this many servers (it is slow)")
    parser.add_argument("--timeout", type=float, default=3600, help="per inventory run, seconds")
    parser.add_argument("--memory-limit-gb", type=float, default=14,
                        help="address-space limit for each run, so a runaway plugin fails instead of the machine")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    latencies = [float(x) for x in args.latencies.split(",")]

    work = Path(tempfile.mkdtemp(prefix="anvil-bench-inventory."))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
    env.update({"PATH": f"{BIN}:{env.get('PATH', '')}", "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
                "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1", "HCLOUD_TOKEN": "bench-token",
                "ANSIBLE_LOCAL_TEMP": str(work / "tmp")})
    ours_cfg = work / "ours.hcloud.yml"
    ours_cfg.write_text("plugin: anvil.hetzner.hcloud\n")
    theirs_cfg = work / "theirs.hcloud.yml"
    theirs_cfg.write_text("plugin: hetzner.hcloud.hcloud\n")

    print(f"ansible-inventory --list; sandbox on loopback; {os.cpu_count()} CPUs; work dir {work}", flush=True)
    header = (f"{'servers':>8} {'latency':>8} {'ours s':>8} {'hetzner s':>10} {'static s':>9} "
              f"{'hetzner/ours':>13} {'ours/static':>12} {'ours req':>9} {'hetzner req':>12} "
              f"{'ours MB':>8} {'hetzner MB':>11} {'static MB':>10}")
    print(header)
    print("-" * len(header), flush=True)
    rows: dict[tuple[int, float], float] = {}
    out_of_memory: dict[int, str] = {}
    for size in sizes:
        world = generate_world(size, networks=2)
        static_path = work / f"static-{size}.yml"
        static_s: float | None = None
        for latency in latencies:
            with Sandbox([Project("bench", "bench-token", world, rate_limit=3600, tokens=3600.0)],
                         latency_ms=latency) as sandbox:
                env_run = env | {"HCLOUD_ENDPOINT": sandbox.url}
                if not static_path.exists():
                    run_inventory(ours_cfg, env_run, static_path, args.timeout, yaml_out=True)
                    sandbox.reset()
                ours_out = work / "ours.json"
                ours_s, ours_mb = run_inventory(ours_cfg, env_run, ours_out, args.timeout,
                                                memory_limit_gb=args.memory_limit_gb)
                ours_req = sandbox.requests()["total"]
                assert host_count(ours_out) == size
                theirs_s = theirs_req = theirs_mb = None
                theirs_note = "skipped"
                if size in out_of_memory:  # memory does not depend on latency: it would fail again
                    theirs_note = out_of_memory[size]
                elif size <= args.skip_hetzner_above:
                    sandbox.reset()
                    sandbox.configure({"legacy_datacenter": True})
                    theirs_out = work / "theirs.json"
                    try:
                        theirs_s, theirs_mb = run_inventory(theirs_cfg, env_run, theirs_out, args.timeout,
                                                            memory_limit_gb=args.memory_limit_gb)
                        theirs_req = sandbox.requests()["total"]
                        assert host_count(theirs_out) == size
                    except OutOfMemory as exc:
                        theirs_note = f"OOM {exc}"
                        out_of_memory[size] = theirs_note
            if static_s is None:  # the static file needs no API: timed once per size
                static_out = work / "static.json"
                static_s, static_mb = run_inventory(static_path, env, static_out, args.timeout,
                                                    memory_limit_gb=args.memory_limit_gb)
                assert host_count(static_out) == size
            rows[(size, latency)] = ours_s
            hetzner = f"{theirs_s:10.2f}" if theirs_s is not None else f"{theirs_note.replace('more than ', '>'):>10}"
            ratio = f"{theirs_s / ours_s:13.1f}" if theirs_s is not None else f"{'-':>13}"
            print(f"{size:>8} {latency:>6.0f}ms {ours_s:8.2f} {hetzner} {static_s:9.2f} {ratio} "
                  f"{ours_s / static_s:12.2f} {ours_req:>9} "
                  f"{theirs_req if theirs_req is not None else '-':>12} {ours_mb:8.0f} "
                  f"{f'{theirs_mb:.0f}' if theirs_mb is not None else '-':>11} {static_mb:10.0f}", flush=True)
    low = min(latencies)
    if len(sizes) > 1:
        print(f"\nours, cost of each extra server between sizes ({low:.0f} ms latency): linear growth keeps this flat")
        for small, big in zip(sizes, sizes[1:]):
            marginal = (rows[(big, low)] - rows[(small, low)]) / (big - small) * 1000
            print(f"  {small:>6} -> {big:>6} servers: {marginal:.2f} ms per server")
    if len(latencies) > 1:
        low, high = min(latencies), max(latencies)
        print(f"\nlatency added to ours ({high:.0f} ms vs {low:.0f} ms per request), same run:")
        for size in sizes:
            print(f"  {size:>6} servers: {rows[(size, high)] - rows[(size, low)]:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
