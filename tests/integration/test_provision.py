"""Provisioning end to end on the Hetzner API sandbox's machines (DockerBackend: a created server is a
real systemd container with sshd, cloud-init, its firewall, private networks and volumes).

One sandbox serves the module with two projects:

- `API_PROJECT`: hcloud-python alone creates an SSH key, a network, a Cloud Firewall, a spread
  placement group, a volume and two servers, logs in, probes the firewall and the private network,
  deletes everything and finds nothing left (step 1).
- `ENV_PROJECT`: playbooks/provision.yml (the controller venv: ansible 14, hetzner.hcloud 6) makes a
  small environment, proves it idempotent, in check mode too, and the anvil.hetzner.hcloud inventory
  finds it (step 2); writes answered 429/409 are retried (step 3); a server whose create action
  ends in `error` fails the run, naming it, and a rerun finishes the job (step 4); teardown.yml
  refuses without confirmation, then deletes everything (step 5).

At most two servers exist at once. The tests talk only to loopback (the sandbox) and to the
containers they create (their public addresses sit on the project's Docker network, whose gateway
is this host). Each step is a test named after it; a later step of ENV_PROJECT is skipped when the
one it builds on failed. Timings are printed at the end (pytest -s, or in the failure report).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTROLLER = ROOT / ".venv-controller" / "bin"
BIN = Path(sys.executable).parent
PID = os.getpid()
API_PROJECT = f"itest-prov-api-{PID}"
ENV_PROJECT = f"itest-prov-{PID}"
ENV = "itest"
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
KINDS = ("servers", "volumes", "firewalls", "placement_groups", "networks", "ssh_keys", "primary_ips", "load_balancers")


def _unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode != 0:
        return "no Docker engine answers (tests/harness/lib.sh: ensure_engine)"
    if os.geteuid() != 0:
        return "needs root (the sandbox's DockerBackend sets firewalls and mounts volumes on the host)"
    for tool in ("nsenter", "nft", "ssh", "ssh-keygen", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not (CONTROLLER / "ansible-playbook").exists():
        return "the controller venv is missing (. tests/harness/lib.sh; ensure_controller_venv)"
    try:
        from hcloud_sandbox.docker_backend import IMAGES  # noqa: F401 - only whether it loads
    except Exception as exc:  # noqa: BLE001 - any reason it cannot load is a reason to skip
        return f"hcloud_sandbox.docker_backend cannot be loaded: {exc}"
    image = IMAGES["debian-12"]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False).returncode:
        return f"image {image} is missing (tests/images/build-server.sh)"
    return None


UNAVAILABLE = _unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"the sandbox's machines cannot run here: {UNAVAILABLE}")

if UNAVAILABLE is None:
    from hcloud import Client
    from hcloud.firewalls.domain import FirewallRule
    from hcloud.images import Image
    from hcloud.locations import Location
    from hcloud.networks.domain import NetworkSubnet
    from hcloud.server_types import ServerType
    from hcloud_sandbox import Project, Sandbox, World
    from hcloud_sandbox.docker_backend import LABEL, DockerBackend


# -- helpers -------------------------------------------------------------------------------------
def ssh(key: Path, ip: str, command: str, *options: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-i", str(key), *SSH_OPTIONS, *options, f"root@{ip}", command],
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_ssh(key: Path, ip: str, seconds: float = 300) -> float:
    """Seconds until root logs in on `ip` with `key` and cloud-init has finished. Bounded, with room
    for a 2-core machine that runs the Molecule lanes beside this test (make test)."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < seconds:
        try:
            last = ssh(key, ip, "cloud-init status --wait >/dev/null 2>&1; true", timeout=60)
        except subprocess.TimeoutExpired:
            continue  # a boot that is slow under load: try again until the bound
        if last.returncode == 0:
            return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"no SSH login as root on {ip} within {seconds} s: {last.stderr if last else ''}")


def inside(backend: Any, project: str, server_id: int, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", backend.machine(project, server_id), "sh", "-c", command],
                          capture_output=True, text=True, timeout=30, check=False)


def reaches(backend: Any, project: str, server_id: int, ip: str, port: int = 22) -> bool:
    """Whether the server opens a TCP connection to ip:port (2 s), probed from inside it."""
    probe = f"import socket; socket.create_connection(({ip!r}, {port}), timeout=2).close()"
    return inside(backend, project, server_id, f"python3 -c {json.dumps(probe)}").returncode == 0


def docker_objects(project: str) -> dict[str, list[str]]:
    """The Docker containers, networks and volumes labelled with the project (names)."""
    label = f"label={LABEL}.project={project}"
    found = {}
    for kind, argv in (("containers", ["ps", "-a", "--format", "{{.Names}}"]),
                       ("networks", ["network", "ls", "--format", "{{.Name}}"]),
                       ("volumes", ["volume", "ls", "--format", "{{.Name}}"])):
        found[kind] = sorted(subprocess.run(["docker", *argv, "--filter", label], capture_output=True, text=True,
                                            timeout=30, check=True).stdout.split())
    return found


def api_lists(client: Any, label_selector: str | None = None) -> dict[str, list[str]]:
    """The names (or IPs) of every kind the API lists, optionally by label selector."""
    out = {}
    for kind in KINDS:
        resources = getattr(client, kind).get_all(**({"label_selector": label_selector} if label_selector else {}))
        out[kind] = sorted(getattr(r, "name", None) or str(getattr(r, "ip", r.id)) for r in resources)
    return out


def free_ranges(backend: Any, count: int) -> list[ipaddress.IPv4Network]:
    used = [u for u in backend._used_subnets() if u.version == 4]
    found = []
    for second in range(160, 200):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used):
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError("no free 10.x.0.0/16 for the private networks")


def control(box: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET or POST one of the sandbox's test controls (/_sandbox/...)."""
    base = box.url.removesuffix("/v1")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/_sandbox/{path}", data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
        return json.loads(answer.read() or b"null")


RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Run:
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str], seconds: float):
        self.argv, self.rc, self.stdout, self.stderr, self.seconds = argv, proc.returncode, proc.stdout, proc.stderr, seconds
        found = RECAP.findall(self.stdout)
        self.recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, found[-1]))) if found else None

    @property
    def changed(self) -> int:
        assert self.recap is not None, f"no PLAY RECAP in the output:\n{self}"
        return self.recap["changed"]

    def __str__(self) -> str:
        tail = "\n".join(self.stdout.splitlines()[-60:])
        return f"$ {' '.join(self.argv[1:])}\nrc={self.rc} ({self.seconds:.0f} s)\n{tail}\n--- stderr\n{self.stderr[-3000:]}"


def playbook(world: dict[str, Any], name: str, description: dict[str, Any], *args: str, timeout: float = 900) -> Run:
    """Run playbooks/<name>.yml with the controller venv's ansible-playbook against ENV_PROJECT."""
    tmp: Path = world["tmp"]
    (tmp / "description.json").write_text(json.dumps({"hcloud_environment": description}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), HCLOUD_ENDPOINT=world["box"].url,
               HCLOUD_TOKEN=world["env_token"], PATH=f"{CONTROLLER}:{env.get('PATH', '')}")
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"  # each task's time, in the runs' logs
    argv = [str(CONTROLLER / "ansible-playbook"), "-i", "localhost,", f"playbooks/{name}.yml",
            "-e", f"@{tmp / 'description.json'}", "-e", "provision_ssh_timeout=300", *args]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    run = Run(argv, proc, time.monotonic() - start)
    log = tmp / "runs" / f"{len(world['timings']):02d}-{name}.log"  # every run's whole output, for a failure's reader
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"{run}\n\n--- whole stdout\n{proc.stdout}")
    label = f"{name} {' '.join(a for a in args if not a.startswith('@'))}".strip()
    world["timings"].append((label, run.seconds))
    return run


def _unsafe(value: Any) -> Any:
    """ansible-inventory marks strings from inventory plugins as unsafe: {"__ansible_unsafe": "..."}."""
    return value.get("__ansible_unsafe", value) if isinstance(value, dict) else value


def writes(box: Any) -> dict[str, int]:
    return {path: n for path, n in box.requests()["by_path"].items() if not path.startswith("GET ")}


# -- the shared sandbox --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("provision")
    keys = {}
    for name in ("api", "env", "other"):
        keys[name] = tmp / f"id_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@itest", "-f", str(keys[name])],
                       check=True, timeout=30)
    backend = DockerBackend(state_dir=tmp / "state")
    state: dict[str, Any] = {"tmp": tmp, "keys": keys, "backend": backend, "timings": [], "done": set(),
                             "api_token": f"tok-api-{PID}", "env_token": f"tok-env-{PID}"}
    start = time.monotonic()
    box = Sandbox([Project(API_PROJECT, state["api_token"], World()), Project(ENV_PROJECT, state["env_token"], World())],
                  backend=backend)
    try:
        box.serve()
        state["box"] = box
        state["api_range"], state["env_range"] = free_ranges(backend, 2)
        state["api_gateway"] = backend.public_gateway(API_PROJECT)
        state["env_gateway"] = backend.public_gateway(ENV_PROJECT)
        yield state
    finally:
        box.close()
        for project in (API_PROJECT, ENV_PROJECT):
            backend.remove_project(project)
        backend.close()
        state["timings"].append(("whole module", time.monotonic() - start))
        print("\ntimings (s):", json.dumps([(label, round(s, 1)) for label, s in state["timings"]]))


# The host's TCP counters around each test, printed with a failure (pytest shows a passing test's
# output nowhere): a connection the sandbox never answered is either the sandbox's (it says so on
# stderr) or the kernel's, and these say which kind (a full listen queue, a socket closed unread).
TCP_COUNTERS = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPAbortOnData", "TcpExtTCPAbortOnClose",
                "TcpExtTCPAbortOnMemory", "TcpEstabResets", "TcpAttemptFails", "TcpOutRsts")


def tcp_counters() -> dict[str, int]:
    try:
        out = subprocess.run(["nstat", "-asz", *TCP_COUNTERS], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in TCP_COUNTERS}


@pytest.fixture(autouse=True)
def tcp_delta():
    before = tcp_counters()
    yield
    after = tcp_counters()
    print("host TCP counters during this test:", {k: after[k] - before.get(k, 0) for k in after})


def needs(world: dict[str, Any], step: str) -> None:
    if step not in world["done"]:
        pytest.skip(f"needs step {step!r}, which did not pass")


def client_for(world: dict[str, Any], token_key: str) -> Any:
    return Client(token=world[token_key], api_endpoint=world["box"].url, poll_interval=0.5, poll_max_retries=600)


def description(world: dict[str, Any], *, db: bool = False, http: bool = False) -> dict[str, Any]:
    """The environment: web-1 (with a 10 GB volume) behind the `web` firewall; with db, also db-1
    behind `db`. SSH is open to the host's address on the project's public network only."""
    host = f"{world['env_gateway']}/32"
    subnet = str(next(world["env_range"].subnets(new_prefix=24)))
    web_rules: list[dict[str, Any]] = [{"port": 22, "source_ips": [host], "description": "ssh from the controller"}]
    if http:
        web_rules.append({"port": 80, "source_ips": ["0.0.0.0/0", "::/0"], "description": "http"})
    env: dict[str, Any] = {
        "name": ENV, "location": "fsn1", "server_type": "cx22", "image": "debian-12",
        "ssh_keys": [{"name": "admin", "public_key": world["keys"]["env"].with_suffix(".pub").read_text().strip()}],
        "network": {"ip_range": str(world["env_range"]), "subnets": [subnet]},
        "firewalls": {"web": web_rules},
        "servers": [{"name": "web-1", "role": "web", "volumes": [{"name": "web-1-data", "size": 10}]}],
    }
    if db:
        env["firewalls"]["db"] = [{"port": 22, "source_ips": [host]}]
        env["servers"].append({"name": "db-1", "role": "db"})
    return env


# -- step 1: hcloud-python on real machines ------------------------------------------------------
def test_step1_hcloud_python_creates_logs_in_probes_and_deletes(world):
    box, backend, key = world["box"], world["backend"], world["keys"]["api"]
    client = client_for(world, "api_token")
    start = time.monotonic()
    ip_range = world["api_range"]
    subnet = next(ip_range.subnets(new_prefix=24))
    ssh_key = client.ssh_keys.create(name="itest", public_key=key.with_suffix(".pub").read_text().strip())
    network = client.networks.create(name="itest-net", ip_range=str(ip_range), subnets=[
        NetworkSubnet(ip_range=str(subnet), network_zone="eu-central", type="cloud")])
    rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[f"{world['api_gateway']}/32"])
    made = client.firewalls.create(name="itest-ssh", rules=[rule])
    firewall = made.firewall
    for action in made.actions or []:
        action.wait_until_finished()
    group = client.placement_groups.create(name="itest-spread", type="spread").placement_group
    made = client.volumes.create(size=10, name="itest-data", location=Location(name="fsn1"), format="ext4")
    volume = made.volume
    made.action.wait_until_finished()
    common = {"server_type": ServerType(name="cx22"), "image": Image(name="debian-12"), "location": Location(name="fsn1"),
              "ssh_keys": [ssh_key], "networks": [network]}
    a = client.servers.create(name="itest-a", firewalls=[firewall], placement_group=group, volumes=[volume],
                              automount=True, **common)
    b = client.servers.create(name="itest-b", **common)
    assert a.root_password is None and b.root_password is None  # keys given: no password is set
    for made in (a, b):
        made.action.wait_until_finished()
        for action in made.next_actions:
            action.wait_until_finished()
    world["timings"].append(("step 1: create 2 servers with everything (actions ended)", time.monotonic() - start))
    server_a, server_b = client.servers.get_by_id(a.server.id), client.servers.get_by_id(b.server.id)
    assert (server_a.status, server_b.status) == ("running", "running")
    assert [f.firewall.id for f in server_a.public_net.firewalls] == [firewall.id]
    assert server_a.placement_group.id == group.id and [v.id for v in server_a.volumes] == [volume.id]
    ip_a, ip_b = server_a.public_net.ipv4.ip, server_b.public_net.ipv4.ip
    private_a, private_b = server_a.private_net[0].ip, server_b.private_net[0].ip
    assert ipaddress.ip_address(private_a) in subnet and ipaddress.ip_address(private_b) in subnet

    # root logs in with the key; a password is never accepted
    wait_ssh(key, ip_a)
    world["timings"].append(("step 1: create -> SSH as root (a)", time.monotonic() - start))
    result = ssh(key, ip_a, "hostname; ip -o -4 addr show")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "itest-a" and f"{private_a}/" in result.stdout
    assert inside(backend, API_PROJECT, server_a.id, "echo 'root:S4ndbox-pass' | chpasswd").returncode == 0
    result = ssh(key, ip_a, "true", "-o", "PubkeyAuthentication=no",
                 "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert result.returncode == 255 and "Permission denied (publickey)" in result.stderr, result.stderr
    result = ssh(world["keys"]["other"], ip_a, "true")
    assert result.returncode == 255 and "Permission denied" in result.stderr, result.stderr

    # the volume is a filesystem mounted where Hetzner's automount puts it
    mount = f"/mnt/HC_Volume_{volume.id}"
    result = ssh(key, ip_a, f"findmnt -n -o FSTYPE {mount} && df --output=size -k {mount} | tail -1 && "
                            f"echo kept > {mount}/data && cat {mount}/data")
    assert result.returncode == 0, result.stdout + result.stderr
    fstype, size_kib, data = result.stdout.split()
    assert fstype == "ext4" and int(size_kib) > 9 * 1024 * 1024 and data == "kept"

    # the firewall: SSH only from the host; b (no firewall, same network) is refused on a's public
    # address and reaches a's private address; the probe itself works (a reaches b's public SSH)
    wait_ssh(key, ip_b)
    assert not reaches(backend, API_PROJECT, server_b.id, ip_a)
    assert reaches(backend, API_PROJECT, server_b.id, private_a)
    assert reaches(backend, API_PROJECT, server_a.id, ip_b)
    assert reaches(backend, API_PROJECT, server_a.id, private_b)

    # delete everything, servers first (the volume detaches with its server)
    start = time.monotonic()
    for server in (server_a, server_b):
        client.servers.delete(server).wait_until_finished()
    assert client.volumes.get_by_id(volume.id).server is None
    assert client.volumes.delete(volume) is True
    assert client.firewalls.delete(firewall) is True
    assert client.placement_groups.delete(group) is True
    assert client.networks.delete(network) is True
    assert client.ssh_keys.delete(ssh_key) is True
    world["timings"].append(("step 1: delete everything", time.monotonic() - start))
    assert api_lists(client) == {kind: [] for kind in KINDS}
    # what stays is the project's public network (the sandbox's stand-in for the internet: it goes
    # with remove_project); no container, no private network, no volume disk or mount
    assert docker_objects(API_PROJECT) == {"containers": [], "networks": [backend._public(API_PROJECT)], "volumes": []}
    assert list(backend._dir(API_PROJECT, "volumes").glob("*/disk.img")) == []
    assert not [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if str(backend._dir(API_PROJECT)) in m]


# -- step 2: provision.yml ---------------------------------------------------------------------------
def test_step2a_provision_first_run_creates_and_waits_for_ssh(world):
    run = playbook(world, "provision", description(world))
    assert run.rc == 0, str(run)
    assert run.changed > 0, str(run)
    assert re.search(r"TASK \[Wait for SSH on every server \(bounded\)\][^\n]*\n(?:[^\n]*\n){0,2}?ok: \[localhost\] "
                     r"=> \(item=web-1\)", run.stdout), str(run)
    client = client_for(world, "env_token")
    server = client.servers.get_by_name("web-1")
    assert server is not None and server.status == "running"
    assert server.labels == {"env": ENV, "managed-by": "anvil", "role": "web"}
    assert [f.firewall.name for f in server.public_net.firewalls] == [f"{ENV}-web"]
    assert server.placement_group is not None and server.placement_group.name == f"{ENV}-spread"
    world["web_ip"] = server.public_net.ipv4.ip
    world["web_id"] = server.id
    world["web_volume"] = client.volumes.get_by_name("web-1-data").id
    world["done"].add("provisioned")


def test_step2b_the_server_is_reachable_as_root_with_the_environments_key(world):
    needs(world, "provisioned")
    key, ip = world["keys"]["env"], world["web_ip"]
    wait_ssh(key, ip, seconds=180)
    result = ssh(key, ip, f"hostname; findmnt -n -o FSTYPE /mnt/HC_Volume_{world['web_volume']}; ip -o -4 addr show")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["web-1", "ext4"], result.stdout
    assert any(ipaddress.ip_address(a.split("/")[0]) in world["env_range"]
               for a in re.findall(r"inet (\S+)", result.stdout)), result.stdout
    assert ssh(world["keys"]["other"], ip, "true").returncode == 255  # another key is refused


def test_step2c_second_run_changes_nothing(world):
    needs(world, "provisioned")
    world["box"].reset()
    run = playbook(world, "provision", description(world))
    assert run.rc == 0 and run.changed == 0, str(run)
    assert writes(world["box"]) == {}, writes(world["box"])


def test_step2d_check_mode_changes_nothing(world):
    needs(world, "provisioned")
    world["box"].reset()
    run = playbook(world, "provision", description(world), "--check")
    assert run.rc == 0 and run.changed == 0, str(run)
    assert writes(world["box"]) == {}, writes(world["box"])


def test_step2e_the_inventory_finds_the_server_in_its_groups(world):
    needs(world, "provisioned")
    tmp: Path = world["tmp"]
    source = tmp / f"{ENV}.hcloud.yml"
    source.write_text(yaml.safe_dump({"plugin": "anvil.hetzner.hcloud", "api_endpoint": world["box"].url,
                                      "api_token": world["env_token"], "label_selector": f"env={ENV}"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), PATH=f"{BIN}:{env.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    host = data["_meta"]["hostvars"]["web-1"]
    assert _unsafe(host["ansible_host"]) == world["web_ip"] and host["hcloud_id"] == world["web_id"]
    groups = {name for name, group in data.items() if "web-1" in (group.get("hosts") or [])}
    assert {"hcloud", "web", "location_fsn1", "server_type_cx22", "os_debian_12", "status_running"} <= groups, groups


# -- step 3: writes answered 429 and 409 -------------------------------------------------------------
def test_step3_writes_answered_429_and_409_are_retried(world):
    """The next two writes answer 429 rate_limit_exceeded, the two after them 409 conflict: the one
    write the run makes (port 80 opened on the web firewall) is sent five times, and the run succeeds."""
    needs(world, "provisioned")
    box = world["box"]
    box.reset()
    control(box, "faults", {"writes": [{"code": "rate_limit_exceeded", "count": 2}, {"code": "conflict", "count": 2}]})
    run = playbook(world, "provision", description(world, http=True))
    assert control(box, "faults") == {"writes": [], "actions": []}  # all four fired
    assert run.rc == 0, str(run)
    assert run.changed > 0, str(run)
    assert writes(box) == {"POST /v1/firewalls/{id}/actions/set_rules": 5}, writes(box)
    rules = client_for(world, "env_token").firewalls.get_by_name(f"{ENV}-web").rules
    assert sorted(r.port for r in rules) == ["22", "80"]


# -- step 4: a server whose create action fails ----------------------------------------------------
def test_step4a_a_failed_create_action_fails_the_run_naming_the_server(world):
    needs(world, "provisioned")
    box = world["box"]
    box.reset()
    control(box, "faults", {"actions": [{"command": "create_server", "code": "server_error", "count": 1}]})
    run = playbook(world, "provision", description(world, db=True, http=True))
    assert control(box, "faults") == {"writes": [], "actions": []}  # it fired
    assert run.rc != 0 and run.recap is not None and run.recap["failed"] == 1, str(run)
    failed = [line for line in run.stdout.splitlines() if line.startswith(("failed:", "fatal:"))]
    assert failed and "db-1" in failed[0], str(run)
    assert "server_error" in run.stdout, str(run)
    # the half-made server is deleted before the run fails, and the message says so
    assert "The half-made server(s) db-1 were deleted; run again." in " ".join((run.stdout + run.stderr).split()), str(run)
    assert client_for(world, "env_token").servers.get_by_name("db-1") is None
    world["done"].add("fault")


def test_step4b_the_rerun_finishes_the_job(world):
    needs(world, "fault")
    box = world["box"]
    client = client_for(world, "env_token")
    half = client.servers.get_by_name("db-1")
    before = f"db-1 after the failed run: {half and half.status}; Docker objects: {docker_objects(ENV_PROJECT)}"
    box.reset()
    run = playbook(world, "provision", description(world, db=True, http=True))
    server = client.servers.get_by_name("db-1")
    assert run.rc == 0, f"{run}\n{before}\nthe rerun's writes: {writes(box)}; db-1 now: {server and server.status}"
    assert run.changed > 0, str(run)
    assert server.status == "running"
    # provision.yml waits for the SSH banner; cloud-init may still restart sshd after it (a login
    # then is reset, as site.yml's login probe knows): log in once cloud-init is done, as step 1 does
    wait_ssh(world["keys"]["env"], server.public_net.ipv4.ip, seconds=180)
    result = ssh(world["keys"]["env"], server.public_net.ipv4.ip, "hostname")
    assert result.stdout.strip() == "db-1", result.stderr
    run = playbook(world, "provision", description(world, db=True, http=True))
    assert run.rc == 0 and run.changed == 0, str(run)


# -- step 5: teardown.yml ----------------------------------------------------------------------------
def test_step5a_teardown_refuses_without_confirmation_before_any_request(world):
    needs(world, "provisioned")
    box = world["box"]
    box.reset()
    for confirm in ([], ["-e", "teardown_confirm=production"]):
        run = playbook(world, "teardown", description(world, db=True, http=True), *confirm)
        assert run.rc == 2 and f"teardown_confirm: give -e teardown_confirm={ENV}" in run.stdout, str(run)
    assert box.requests()["total"] == 0, box.requests()["by_path"]
    assert client_for(world, "env_token").servers.get_by_name("web-1") is not None


def test_step5b_teardown_deletes_everything_and_a_second_run_changes_nothing(world):
    needs(world, "provisioned")
    box, backend = world["box"], world["backend"]
    run = playbook(world, "teardown", description(world, db=True, http=True), "-e", f"teardown_confirm={ENV}")
    assert run.rc == 0 and run.changed > 0, str(run)
    run = playbook(world, "teardown", description(world, db=True, http=True), "-e", f"teardown_confirm={ENV}")
    assert run.rc == 0 and run.changed == 0, str(run)
    assert "nothing labelled env=itest,managed-by=anvil is left" in run.stdout, str(run)
    client = client_for(world, "env_token")
    assert api_lists(client, f"env={ENV}") == {kind: [] for kind in KINDS}
    assert api_lists(client) == {kind: [] for kind in KINDS}  # nothing else was made either
    assert docker_objects(ENV_PROJECT) == {"containers": [], "networks": [backend._public(ENV_PROJECT)], "volumes": []}
    assert list(backend._dir(ENV_PROJECT, "volumes").glob("*/disk.img")) == []
    assert box.wait_idle(timeout=30)
