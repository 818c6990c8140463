"""Benchmark: playbooks/provision.yml for 1 and for N servers, side by side in one run, on the Hetzner
API sandbox with the DockerBackend (every server is a real systemd container with sshd and cloud-init).

One sandbox on loopback serves one project (a unique name, the port given or a free one). Each
round runs every size in turn (1, N, 1, N, ...), each from an empty project with the same
environment shape: a private network, a Cloud Firewall per role (web, app, db), a spread placement
group; the servers spread over the roles. Per run: provision.yml (first run: creates, waits for
SSH), provision.yml again (the no-change run; its `changed` count is shown), teardown.yml; then
the project must be empty again (API and Docker). ansible.posix.profile_tasks times every task;
the slowest tasks of the N-server runs are printed. Then hcloud-python alone measures create
request -> first successful root SSH login for one server, several samples (median).

Prints times and ratios; asserts nothing about time (these machines are noisy). Every step is
bounded (subprocess timeouts, bounded polls); the sandbox project is removed at the end whatever
happened (tests/harness/bench-provision.sh also removes it in its trap).

    .venv/bin/python tests/harness/bench_provision.py --project NAME --state-dir DIR --log-dir DIR \
        [--port 0] [--sizes 1,10] [--rounds 2] [--ssh-samples 5] [--top 12] [--playbooks DIR]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))

from hcloud import Client  # noqa: E402
from hcloud.firewalls.domain import FirewallRule  # noqa: E402
from hcloud.images import Image  # noqa: E402
from hcloud.locations import Location  # noqa: E402
from hcloud.server_types import ServerType  # noqa: E402
from hcloud_sandbox import Project, Sandbox, World  # noqa: E402
from hcloud_sandbox.docker_backend import LABEL, DockerBackend  # noqa: E402

CONTROLLER = ROOT / ".venv-controller" / "bin"
ENV = "bench"
ROLES = ("web", "app", "db")
KINDS = ("servers", "volumes", "firewalls", "placement_groups", "networks", "ssh_keys", "primary_ips", "load_balancers")
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"]
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# profile_tasks' summary lines: "<task name> ------------- 12.34s" (a long name gets only "--")
PROFILE = re.compile(r"^(?P<task>\S.*?) -{2,} (?P<seconds>\d+\.\d+)s$", re.M)


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.project = args.project
        self.token = f"tok-{self.project}"
        self.logs = Path(args.log_dir)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(args.state_dir)
        self.key = self.tmp / "id_bench"
        self.backend = DockerBackend(state_dir=self.tmp / "state", timeout=120)
        self.box = Sandbox([Project(self.project, self.token, World())], backend=self.backend)
        self.runs = 0

    # -- set up and clean up -----------------------------------------------------------------
    def start(self) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@provision", "-f", str(self.key)],
                       check=True, timeout=30)
        self.box.serve(host="127.0.0.1", port=self.args.port)  # loopback only
        self.gateway = self.backend.public_gateway(self.project)
        self.ip_range = self._free_range()
        say(f"sandbox {self.box.url}, project {self.project}, public gateway {self.gateway}, network {self.ip_range}")

    def _free_range(self) -> ipaddress.IPv4Network:
        # 10.210-249: away from test_provision.py's 10.160-199, which may be running beside us
        used = [u for u in self.backend._used_subnets() if u.version == 4]
        for second in range(210, 250):
            candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
            if not any(candidate.overlaps(u) for u in used):
                return candidate
        raise SystemExit("no free 10.x.0.0/16 for the private network")

    def close(self) -> None:
        try:
            self.box.close()
        finally:
            self.backend.remove_project(self.project)
            self.backend.close()

    def client(self) -> Client:
        return Client(token=self.token, api_endpoint=self.box.url, poll_interval=0.5, poll_max_retries=600)

    # -- the environment -----------------------------------------------------------------------
    def description(self, servers: int) -> dict[str, Any]:
        ssh = [{"port": 22, "source_ips": [f"{self.gateway}/32"], "description": "ssh from the controller"}]
        firewalls: dict[str, Any] = {role: list(ssh) for role in ROLES}
        firewalls["web"] = ssh + [{"port": 80, "source_ips": ["0.0.0.0/0", "::/0"], "description": "http"}]
        names = []
        for index in range(servers):
            role = ROLES[index % len(ROLES)]
            names.append({"name": f"{role}-{sum(1 for n in names if n['role'] == role) + 1}", "role": role})
        return {
            "name": ENV, "location": "fsn1", "server_type": "cx22", "image": "debian-12",
            "ssh_keys": [{"name": "admin", "public_key": self.key.with_suffix(".pub").read_text().strip()}],
            "network": {"ip_range": str(self.ip_range), "subnets": [str(next(self.ip_range.subnets(new_prefix=24)))]},
            "firewalls": firewalls,
            "placement_group": True,
            "servers": names,
        }

    def playbook(self, name: str, servers: int, label: str, *args: str) -> dict[str, Any]:
        self.runs += 1
        description = self.tmp / "description.json"
        description.write_text(json.dumps({"hcloud_environment": self.description(servers)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
        env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"), HCLOUD_ENDPOINT=self.box.url,
                   HCLOUD_TOKEN=self.token, PATH=f"{CONTROLLER}:{env.get('PATH', '')}",
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                   PROFILE_TASKS_TASK_OUTPUT_LIMIT="100", PROFILE_TASKS_SORT_ORDER="descending")
        argv = [str(CONTROLLER / "ansible-playbook"), "-i", "localhost,", str(Path(self.args.playbooks) / f"{name}.yml"),
                "-e", f"@{description}", "-e", f"provision_ssh_timeout={self.args.ssh_timeout}", *args]
        self.box.reset()
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=self.args.run_timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SystemExit(f"{label}: {name}.yml did not finish within {self.args.run_timeout} s") from exc
        seconds = time.monotonic() - start
        log = self.logs / f"{self.runs:02d}-{label.replace(' ', '-')}.log"
        log.write_text(f"$ {' '.join(argv)}\nrc={proc.returncode} ({seconds:.1f} s)\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        found = RECAP.findall(proc.stdout)
        if proc.returncode != 0 or not found:
            tail = "\n".join(proc.stdout.splitlines()[-40:])
            raise SystemExit(f"{label}: {name}.yml failed (rc={proc.returncode}, log {log}):\n{tail}\n{proc.stderr[-2000:]}")
        requests = self.box.requests()
        creates = [entry["time"] for entry in requests["log"]
                   if entry.get("method") == "POST" and entry.get("path") == "/v1/servers"]
        run = {"seconds": seconds, "changed": int(found[-1][1]), "log": str(log),
               "tasks": [(m["task"].strip(), float(m["seconds"])) for m in PROFILE.finditer(proc.stdout)],
               "requests": requests["total"], "max_in_flight": requests["max_in_flight"],
               "create_spread": (max(creates) - min(creates)) if len(creates) > 1 else 0.0, "creates": len(creates)}
        say(f"{label}: {seconds:.1f} s, changed={run['changed']}, {run['requests']} API requests")
        return run

    def assert_empty(self, when: str) -> None:
        client = self.client()
        left = {kind: [getattr(r, "name", None) or str(r.id) for r in getattr(client, kind).get_all()] for kind in KINDS}
        left = {kind: names for kind, names in left.items() if names}
        label = f"label={LABEL}.project={self.project}"
        containers = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", label],
                                    capture_output=True, text=True, timeout=60, check=True).stdout.split()
        if left or containers:
            raise SystemExit(f"{when}: the project is not empty: API {left}, containers {containers}")

    # -- the measurements ----------------------------------------------------------------------
    def size_run(self, servers: int, round_no: int) -> dict[str, Any]:
        self.assert_empty(f"before {servers} server(s), round {round_no}")
        tag = f"r{round_no} {servers}srv"
        first = self.playbook("provision", servers, f"{tag} provision")
        second = self.playbook("provision", servers, f"{tag} provision-again")
        down = self.playbook("teardown", servers, f"{tag} teardown", "-e", f"teardown_confirm={ENV}")
        if not self.box.wait_idle(timeout=60):
            raise SystemExit(f"{tag}: actions still running 60 s after teardown")
        self.assert_empty(f"after the teardown of {servers} server(s), round {round_no}")
        return {"servers": servers, "round": round_no, "first": first, "second": second, "teardown": down}

    def create_to_ssh(self, samples: int) -> list[dict[str, float]]:
        """create request -> first successful `ssh root@ip true`, one server at a time (hcloud-python)."""
        client = self.client()
        key = client.ssh_keys.create(name="bench-ssh", public_key=self.key.with_suffix(".pub").read_text().strip())
        rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[f"{self.gateway}/32"])
        made = client.firewalls.create(name="bench-ssh", rules=[rule])
        for action in made.actions or []:
            action.wait_until_finished(max_retries=240)
        firewall = made.firewall
        results = []
        try:
            for index in range(samples):
                start = time.monotonic()
                created = client.servers.create(name=f"ssh-{index}", server_type=ServerType(name="cx22"),
                                                image=Image(name="debian-12"), location=Location(name="fsn1"),
                                                ssh_keys=[key], firewalls=[firewall])
                ip = created.server.public_net.ipv4.ip
                running = None
                deadline = start + self.args.ssh_timeout
                while True:
                    if running is None and client.servers.get_by_id(created.server.id).status == "running":
                        running = time.monotonic() - start
                    proc = subprocess.run(["ssh", "-i", str(self.key), *SSH_OPTIONS, f"root@{ip}", "true"],
                                          capture_output=True, text=True, timeout=30, check=False)
                    if proc.returncode == 0:
                        login = time.monotonic() - start
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"ssh-{index}: no root login on {ip} within {self.args.ssh_timeout} s: "
                                         f"{proc.stderr.strip()}")
                    time.sleep(0.2)
                if running is None:
                    running = login
                results.append({"running": running, "login": login})
                say(f"create -> SSH sample {index + 1}/{samples}: status running after {running:.1f} s, "
                    f"root login after {login:.1f} s")
                client.servers.delete(created.server).wait_until_finished(max_retries=240)
        finally:
            for server in client.servers.get_all():
                client.servers.delete(server).wait_until_finished(max_retries=240)
            client.firewalls.delete(firewall)
            client.ssh_keys.delete(key)
        self.assert_empty("after the create -> SSH samples")
        return results


def report(runs: list[dict[str, Any]], ssh: list[dict[str, float]], sizes: list[int], top: int) -> None:
    print("\nprovision.yml on the sandbox (DockerBackend), side by side; seconds (wall)")
    print(f"{'round':<6} {'servers':>7} {'1st run':>9} {'changed':>8} {'2nd run':>9} {'changed':>8} {'teardown':>9}"
          f" {'API req':>8} {'POST /servers spread':>21}")
    for r in runs:
        print(f"{r['round']:<6} {r['servers']:>7} {r['first']['seconds']:>9.1f} {r['first']['changed']:>8}"
              f" {r['second']['seconds']:>9.1f} {r['second']['changed']:>8} {r['teardown']['seconds']:>9.1f}"
              f" {r['first']['requests']:>8} {r['first']['create_spread']:>20.1f}s")

    def median(servers: int, part: str) -> float:
        return statistics.median(r[part]["seconds"] for r in runs if r["servers"] == servers)

    small, big = sizes[0], sizes[-1]
    print()
    for part, what in (("first", "first run (create)"), ("second", "second run (no change)"), ("teardown", "teardown")):
        per_round = [f"{b[part]['seconds'] / a[part]['seconds']:.2f}"
                     for a, b in zip([r for r in runs if r["servers"] == small], [r for r in runs if r["servers"] == big])]
        print(f"ratio {big}/{small}, {what:<24}: median {median(big, part) / median(small, part):.2f}"
              f"  (per round: {', '.join(per_round)})" + ("   target <= 3.00" if part == "first" else ""))
    for servers in sizes:
        print(f"median, {servers:>2} server(s): first run {median(servers, 'first'):.1f} s, "
              f"no-change run {median(servers, 'second'):.1f} s, teardown {median(servers, 'teardown'):.1f} s")
    if ssh:
        logins = [s["login"] for s in ssh]
        print(f"\ncreate request -> first root SSH login, one server (hcloud-python, {len(ssh)} samples): "
              f"median {statistics.median(logins):.1f} s (min {min(logins):.1f}, max {max(logins):.1f}); "
              f"status `running` after median {statistics.median(s['running'] for s in ssh):.1f} s")

    bigs = [r for r in runs if r["servers"] == big]
    if bigs:
        names = [entry[0] for entry in bigs[-1]["first"]["tasks"][:top]]
        print(f"\nslowest tasks of the {big}-server first runs (ansible.posix.profile_tasks), seconds per round")
        print(f"{'task':<86} " + " ".join(f"{'r' + str(r['round']):>7}" for r in bigs)
              + f" {small}-srv r1".rjust(10))
        small_tasks = dict(next(r for r in runs if r["servers"] == small)["first"]["tasks"])
        for name in names:
            cells = " ".join(f"{dict(r['first']['tasks']).get(name, 0.0):>7.1f}" for r in bigs)
            print(f"{name[:86]:<86} {cells} {small_tasks.get(name, 0.0):>9.1f}")
        per = [r["first"]["create_spread"] / max(1, r["first"]["creates"] - 1) for r in bigs]
        print(f"\nthe {big} POST /v1/servers of a {big}-server first run came one every {statistics.median(per):.1f} s "
              f"(median over rounds; about 0 when the creates are sent at once, about a server's create time when "
              f"the loop waits for each one)")
    print("\nlogs of every run: " + str(Path(runs[0]["first"]["log"]).parent if runs else "-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--port", type=int, default=0, help="the sandbox's port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--sizes", default="1,10")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ssh-samples", type=int, default=5)
    parser.add_argument("--ssh-timeout", type=int, default=180, help="bound of every wait for SSH (s)")
    parser.add_argument("--run-timeout", type=int, default=900, help="bound of every ansible-playbook run (s)")
    parser.add_argument("--playbooks", default=str(ROOT / "playbooks"),
                        help="the directory of provision.yml/teardown.yml (to measure a proposed change from a copy)")
    parser.add_argument("--top", type=int, default=12, help="how many of the slowest tasks to print")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.rounds < 1 or not sizes or max(sizes) > 10:
        raise SystemExit("--rounds >= 1 and sizes of at most 10 servers (a spread placement group holds 10)")

    # SIGTERM (the wrapper's timeout) ends us through the finally below, which removes the project
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    runs: list[dict[str, Any]] = []
    ssh: list[dict[str, float]] = []
    try:
        bench.start()
        for round_no in range(1, args.rounds + 1):
            for servers in sizes:
                say(f"round {round_no}/{args.rounds}: {servers} server(s)")
                runs.append(bench.size_run(servers, round_no))
        if args.ssh_samples > 0:
            ssh = bench.create_to_ssh(args.ssh_samples)
    finally:
        say(f"removing the sandbox project {args.project}")
        bench.close()
    report(runs, ssh, sizes, args.top)


if __name__ == "__main__":
    main()
