"""The Hetzner API sandbox's DockerBackend, called directly: servers are real machines.

Three servers share the module (booting is the slow part): `a` and `b` in a private network, `c`
outside it. Every test checks behaviour a user of a Hetzner server relies on: root logs in with the
requested key and not with a password, user_data ran, the private network reaches exactly its
members, a Cloud Firewall closes SSH except from the allowed sources, a volume keeps its data, a
load balancer forwards only to healthy targets and keeps connections across an update, power
actions and rebuilds behave, and deleting leaves nothing behind. The tests talk only to the
containers they create (their public addresses are on a Docker network of the sandbox host).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from hcloud_sandbox.backend import BackendError, FirewallRule, LoadBalancerSpec, ServerSpec
from hcloud_sandbox.docker_backend import IMAGES, LABEL, LB_IMAGE, DockerBackend

PROJECT = f"hcsb-test-{os.getpid()}"
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
USER_DATA = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo from-user-data > /root/user-data-ran']\n"


def _unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode != 0:
        return "no Docker engine answers (tests/harness/lib.sh: ensure_engine)"
    if os.geteuid() != 0 or shutil.which("nsenter") is None or shutil.which("ssh") is None:
        return "needs root with nsenter and the ssh client (the backend sets firewalls and mounts on the host)"
    for image in (*IMAGES.values(), LB_IMAGE):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30,
                          check=False).returncode != 0:
            return f"image {image} is missing (tests/images/build-server.sh)"
    return None


UNAVAILABLE = _unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"DockerBackend cannot run here: {UNAVAILABLE}")


# -- helpers -------------------------------------------------------------------------------------
def ssh(box: dict[str, Any], ip: str, command: str, *options: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-i", str(box["key"]), *SSH_OPTIONS, *options, f"root@{ip}", command],
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_ssh(box: dict[str, Any], ip: str, seconds: float = 300) -> float:
    """Seconds until root logs in on `ip` and cloud-init has finished (user_data done). Bounded, with
    room for a 2-core machine that runs the Molecule lanes beside this test (make test)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if ssh(box, ip, "cloud-init status --wait >/dev/null 2>&1; true", timeout=60).returncode == 0:
                return time.monotonic() - start
        except subprocess.TimeoutExpired:
            pass  # a boot that is slow under load: try again until the bound
        time.sleep(0.5)
    raise AssertionError(f"no SSH login on {ip} within {seconds} s")


def connects(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def inside(box: dict[str, Any], name: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    machine = box["backend"].machine(PROJECT, box[name]["id"])
    return subprocess.run(["docker", "exec", machine, "sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout, check=False)


def reaches(box: dict[str, Any], name: str, ip: str, port: int = 22) -> bool:
    """Whether server `name` opens a TCP connection to ip:port (2 s)."""
    probe = (f"import socket; socket.create_connection(({ip!r}, {port}), timeout=2).close()")
    return inside(box, name, f"python3 -c {json.dumps(probe)}").returncode == 0


def sandbox_objects() -> list[str]:
    found = []
    label = f"label={LABEL}.project={PROJECT}"
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        out = subprocess.run(["docker", *kind, "-q", "--filter", label], capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
        found += [f"{kind[0]}:{x}" for x in out]
    return found


def free_range(backend: DockerBackend) -> str:
    used = backend._used_subnets()
    for second in range(200, 250):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            return str(candidate)
    raise AssertionError("no free 10.x.0.0/16 for the private network")


# -- the shared world ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sandbox-docker")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    backend = DockerBackend(state_dir=tmp / "state")
    public = ipaddress.ip_network(backend.public_subnet(PROJECT))
    public6 = list(ipaddress.ip_network(backend.public_subnet6(PROJECT)).subnets(new_prefix=64))
    ip_range = ipaddress.ip_network(free_range(backend))
    subnet = list(ip_range.subnets(new_prefix=24))[1]
    backend.create_network(PROJECT, 70, str(ip_range), [str(subnet)])
    world: dict[str, Any] = {"backend": backend, "key": key, "tmp": tmp, "gateway": backend.public_gateway(PROJECT),
                             "network": 70, "subnet": subnet, "public": public, "timings": {}}
    pubkey = key.with_suffix(".pub").read_text().strip()
    layout = {"a": (1, "web-a", USER_DATA, True), "b": (2, "web-b", None, True), "c": (3, "lone-c", None, False)}
    start = time.monotonic()
    try:
        for name, (sid, hostname, user_data, private) in layout.items():
            spec = ServerSpec(project=PROJECT, server_id=sid, name=hostname, image="debian-12", ssh_keys=[pubkey],
                              user_data=user_data, public_ipv4=str(public[10 + sid]),
                              public_ipv6=str(public6[sid][1]),
                              private=[(70, str(subnet[1 + sid]))] if private else [])
            backend.create_server(spec)
            world[name] = {"id": sid, "spec": spec, "ip": spec.public_ipv4, "ip6": spec.public_ipv6,
                           "private": str(subnet[1 + sid]) if private else None}
        world["timings"]["create 3 servers"] = time.monotonic() - start
        wait_ssh(world, world["a"]["ip"])
        world["timings"]["create->ssh+user_data (a, created first)"] = time.monotonic() - start
        for name in ("b", "c"):
            wait_ssh(world, world[name]["ip"])
        world["timings"]["create->ssh (all 3)"] = time.monotonic() - start
        yield world
    finally:
        print("\ntimings:", json.dumps({k: round(v, 1) for k, v in world["timings"].items()}))
        backend.remove_project(PROJECT)
        backend.close()


# -- servers -------------------------------------------------------------------------------------
def test_root_logs_in_with_the_key_and_user_data_ran(box):
    result = ssh(box, box["a"]["ip"], "hostname; cat /root/user-data-ran; cloud-init status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["web-a", "from-user-data", "status:", "done"]
    # a server without user_data boots just as well (empty user-data), with its own name
    result = ssh(box, box["b"]["ip"], "hostname; test ! -e /root/user-data-ran && cloud-init status")
    assert result.stdout.split() == ["web-b", "status:", "done"], result.stdout + result.stderr
    # another key is refused
    other = box["tmp"] / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    result = subprocess.run(["ssh", "-i", str(other), *SSH_OPTIONS, f"root@{box['a']['ip']}", "true"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 255 and "Permission denied" in result.stderr


def test_password_login_is_refused(box):
    assert inside(box, "a", "echo 'root:S4ndbox-pass' | chpasswd").returncode == 0
    result = ssh(box, box["a"]["ip"], "true", "-o", "PubkeyAuthentication=no",
                 "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr  # no password method offered
    assert "passwordauthentication no" in inside(box, "a", "sshd -T").stdout


def test_public_ipv6_address(box):
    assert connects(box["a"]["ip6"], 22)
    addresses = inside(box, "a", "ip -6 -o addr show scope global").stdout
    assert f"{box['a']['ip6']}/48" in addresses and addresses.count("inet6") == 1


def test_private_network_reaches_its_members_only(box):
    backend = box["backend"]
    assert reaches(box, "a", box["b"]["private"])
    assert reaches(box, "b", box["a"]["private"])
    assert not reaches(box, "c", box["a"]["private"])
    # attach and detach on a running server
    c_private = str(box["subnet"][9])
    backend.attach_network(PROJECT, box["c"]["id"], box["network"], c_private)
    assert reaches(box, "c", box["a"]["private"])
    assert reaches(box, "a", c_private)
    backend.detach_network(PROJECT, box["c"]["id"], box["network"])
    assert not reaches(box, "c", box["a"]["private"])
    assert c_private not in inside(box, "c", "ip -o addr").stdout


def test_firewall_closes_ssh_except_from_the_admin_sources(box):
    backend, a = box["backend"], box["a"]
    host = box["gateway"]  # the sandbox host's address on the public network
    try:
        backend.set_firewall(PROJECT, a["id"], [FirewallRule("in", "tcp", "22", [f"{host}/32"])], True)
        assert connects(a["ip"], 22)
        assert not reaches(box, "c", a["ip"])           # public source not allowed
        assert not connects(a["ip6"], 22)                # IPv6 is filtered too
        assert reaches(box, "b", a["private"])           # the private network is not filtered
        assert ssh(box, a["ip"], "true").returncode == 0

        backend.set_firewall(PROJECT, a["id"], [FirewallRule("in", "tcp", "22", [f"{box['c']['ip']}/32"]),
                                                FirewallRule("in", "tcp", "80-85", ["0.0.0.0/0", "::/0"])], True)
        assert not connects(a["ip"], 22)
        assert reaches(box, "c", a["ip"])
        # replies to the server's own connections pass; outbound is open without "out" rules
        assert reaches(box, "a", box["c"]["ip"])

        # an "out" rule filters outbound: only to b's public address
        backend.set_firewall(PROJECT, a["id"], [FirewallRule("in", "tcp", "22", [f"{host}/32"]),
                                                FirewallRule("out", "tcp", "22", [], [f"{box['b']['ip']}/32"])], True)
        assert reaches(box, "a", box["b"]["ip"])
        assert not reaches(box, "a", box["c"]["ip"])
        assert connects(a["ip"], 22)  # inbound allowed connection answered despite out filtering
    finally:
        backend.set_firewall(PROJECT, a["id"], [], False)
    assert connects(a["ip"], 22) and reaches(box, "c", a["ip"])


def test_volume_keeps_its_data_across_detach_and_attach(box):
    backend = box["backend"]
    backend.create_volume(PROJECT, 500, 10, "ext4")
    backend.attach_volume(PROJECT, 500, box["a"]["id"], "/mnt/HC_Volume_500")
    df = inside(box, "a", "df --output=fstype,size /mnt/HC_Volume_500 | tail -1").stdout.split()
    assert df[0] == "ext4" and int(df[1]) > 9 * 1024 * 1024  # KiB: a real 10 GB filesystem
    assert inside(box, "a", "echo kept > /mnt/HC_Volume_500/data").returncode == 0
    backend.detach_volume(PROJECT, 500, box["a"]["id"])
    assert inside(box, "a", "test -e /mnt/HC_Volume_500").returncode != 0
    backend.attach_volume(PROJECT, 500, box["b"]["id"], "/mnt/HC_Volume_500")
    assert inside(box, "b", "cat /mnt/HC_Volume_500/data").stdout == "kept\n"
    backend.detach_volume(PROJECT, 500, box["b"]["id"])
    backend.attach_volume(PROJECT, 500, box["a"]["id"], "/mnt/HC_Volume_500")
    assert inside(box, "a", "cat /mnt/HC_Volume_500/data").stdout == "kept\n"
    backend.detach_volume(PROJECT, 500, box["a"]["id"])


# -- load balancer -------------------------------------------------------------------------------
def serve_http(box: dict[str, Any], name: str) -> None:
    """A web server on the private address, answering with the server's name."""
    script = (f"mkdir -p /srv/www && hostname > /srv/www/index.html && cd /srv/www && "
              f"exec python3 -m http.server 8080 --bind {box[name]['private']} >/dev/null 2>&1")
    machine = box["backend"].machine(PROJECT, box[name]["id"])
    subprocess.run(["docker", "exec", "-d", machine, "sh", "-c", script], check=True, timeout=30)


def lb_spec(box: dict[str, Any], targets: list[str], algorithm: str = "round_robin") -> LoadBalancerSpec:
    check = {"protocol": "http", "port": 8080, "interval": 1, "timeout": 1, "retries": 1,
             "http": {"path": "/", "status_codes": ["2??"]}}
    services = [{"protocol": "http", "listen_port": 80, "destination_port": 8080, "proxyprotocol": False,
                 "health_check": check},
                {"protocol": "tcp", "listen_port": 2222, "destination_port": 22, "proxyprotocol": False,
                 "health_check": {"protocol": "tcp", "port": 22, "interval": 1, "timeout": 1, "retries": 1}}]
    return LoadBalancerSpec(project=PROJECT, lb_id=90, name="lb-web", public_ipv4=str(box["public"][90]),
                            private=[(box["network"], str(box["subnet"][90]))], algorithm=algorithm,
                            services=services, targets=[{"server_id": 0, "ip": ip} for ip in targets])


def wait_health(box: dict[str, Any], port: int, want: dict[str, str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = box["backend"].load_balancer_status(PROJECT, 90).get("health", {}).get(str(port), {})
        if health == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"health of port {port}: {health}, wanted {want}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode().strip()


def test_load_balancer_forwards_only_to_healthy_targets(box):
    backend = box["backend"]
    serve_http(box, "a")
    serve_http(box, "b")
    dead = str(box["subnet"][99])  # an address in the network where nothing listens
    a_ip, b_ip = box["a"]["private"], box["b"]["private"]
    start = time.monotonic()
    backend.apply_load_balancer(lb_spec(box, [a_ip, b_ip, dead]))
    wait_health(box, 80, {a_ip: "healthy", b_ip: "healthy", dead: "unhealthy"})
    box["timings"]["lb healthy"] = time.monotonic() - start
    url = f"http://{box['public'][90]}/"
    answers = [get(url) for _i in range(6)]
    assert sorted(set(answers)) == ["web-a", "web-b"] and answers.count("web-a") == 3  # round robin

    # a connection in flight survives an update of the whole state (b removed, algorithm changed)
    held = socket.create_connection((str(box["public"][90]), 2222), timeout=5)
    held.settimeout(5)
    assert held.recv(256).startswith(b"SSH-2.0-")
    backend.apply_load_balancer(lb_spec(box, [a_ip, dead], algorithm="least_connections"))
    held.sendall(b"SSH-2.0-sandbox-test\r\n")
    assert len(held.recv(4096)) > 0  # the server's key exchange: the connection still forwards
    held.close()
    wait_health(box, 80, {a_ip: "healthy", dead: "unhealthy"})
    assert {get(url) for _i in range(4)} == {"web-a"}

    # a target whose check fails gets no traffic
    backend.apply_load_balancer(lb_spec(box, [a_ip, b_ip]))
    wait_health(box, 80, {a_ip: "healthy", b_ip: "healthy"})
    inside(box, "b", "pkill -f '[h]ttp.server 8080'")
    wait_health(box, 80, {a_ip: "healthy", b_ip: "unhealthy"})
    assert {get(url) for _i in range(4)} == {"web-a"}

    # least_connections: with a connection held on one target, new ones go to the other
    serve_http(box, "b")
    backend.apply_load_balancer(lb_spec(box, [a_ip, b_ip], algorithm="least_connections"))
    wait_health(box, 80, {a_ip: "healthy", b_ip: "healthy"})
    idle = socket.create_connection((str(box["public"][90]), 80), timeout=5)
    try:
        time.sleep(0.3)
        answers = set()
        for _i in range(4):
            answers.add(get(url))
            time.sleep(0.3)  # the proxy counts a connection as closed once both directions ended
        assert len(answers) == 1, answers
    finally:
        idle.close()
    backend.delete_load_balancer(PROJECT, 90)
    assert not connects(str(box["public"][90]), 80, timeout=1)


# -- power, rebuild, delete ----------------------------------------------------------------------
def test_power_off_on_and_reboot(box):
    backend, a = box["backend"], box["a"]
    backend.set_firewall(PROJECT, a["id"], [FirewallRule("in", "tcp", "22", [f"{box['gateway']}/32"])], True)
    # Docker's data dir is on a real filesystem (overlay2 works there), not on the container's overlay
    fs = inside(box, "a", "stat -f -c %T /var/lib/docker && echo kept > /var/lib/docker/kept")
    assert fs.returncode == 0 and fs.stdout.split()[0] not in ("overlayfs", "tmpfs"), fs.stdout
    backend.power_off(PROJECT, a["id"], graceful=True)
    assert backend.server_running(PROJECT, a["id"]) is False
    assert not connects(a["ip"], 22) and not reaches(box, "b", a["private"])  # off: no answer at all
    start = time.monotonic()
    backend.power_on(PROJECT, a["id"])
    assert backend.server_running(PROJECT, a["id"]) is True
    wait_ssh(box, a["ip"])
    box["timings"]["power on->ssh"] = time.monotonic() - start
    result = ssh(box, a["ip"], "cat /root/user-data-ran /var/lib/docker/kept")
    assert result.stdout == "from-user-data\nkept\n"  # the disk is kept, Docker's data dir too
    assert not reaches(box, "c", a["ip"])  # the firewall is outside the machine: still applied
    backend.reboot(PROJECT, a["id"], hard=True)
    wait_ssh(box, a["ip"])
    backend.power_off(PROJECT, a["id"], graceful=False)
    assert backend.server_running(PROJECT, a["id"]) is False
    backend.reboot(PROJECT, a["id"], hard=False)  # a reboot of an off server starts it
    wait_ssh(box, a["ip"])
    backend.set_firewall(PROJECT, a["id"], [], False)


def test_rebuild_wipes_the_disk_and_keeps_the_addresses(box):
    backend, b = box["backend"], box["b"]
    assert inside(box, "b", "touch /root/before-rebuild /var/lib/docker/before-rebuild").returncode == 0
    spec = b["spec"]
    rebuilt = ServerSpec(project=PROJECT, server_id=b["id"], name=spec.name, image="debian-13",
                         ssh_keys=spec.ssh_keys, user_data=USER_DATA, public_ipv4=spec.public_ipv4,
                         public_ipv6=spec.public_ipv6, private=spec.private)
    backend.rebuild(rebuilt)
    wait_ssh(box, b["ip"])
    result = ssh(box, b["ip"], "test ! -e /root/before-rebuild && test ! -e /var/lib/docker/before-rebuild"
                               " && cat /root/user-data-ran /etc/debian_version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("from-user-data\n13.")
    assert reaches(box, "a", b["private"]) and connects(b["ip6"], 22)


def test_deleting_a_server_keeps_its_volume_and_leaves_nothing(box):
    backend, c = box["backend"], box["c"]
    backend.create_volume(PROJECT, 501, 10, "xfs")
    backend.attach_volume(PROJECT, 501, c["id"], "/mnt/HC_Volume_501")
    assert inside(box, "c", "df -T /mnt/HC_Volume_501 | grep -q xfs && echo survives > /mnt/HC_Volume_501/f").returncode == 0
    backend.delete_server(PROJECT, c["id"])
    assert backend.server_running(PROJECT, c["id"]) is False
    assert not connects(c["ip"], 22, timeout=1)
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           timeout=30, check=True).stdout.split()
    assert not [n for n in names if n.startswith(backend.machine(PROJECT, c["id"]))]
    assert not backend._dir(PROJECT, "servers", c["id"]).exists()
    backend.attach_volume(PROJECT, 501, box["a"]["id"], "/mnt/HC_Volume_501")
    assert inside(box, "a", "cat /mnt/HC_Volume_501/f").stdout == "survives\n"


def test_failures_are_backend_errors_with_a_code(box, tmp_path):
    backend = box["backend"]
    with pytest.raises(BackendError) as caught:
        backend.create_server(ServerSpec(project=PROJECT, server_id=60, name="x", image="ubuntu-24.04", ssh_keys=[],
                                         user_data=None, public_ipv4=None, public_ipv6=None))
    assert caught.value.code == "unsupported_error" and "debian-12" in caught.value.message
    # Docker refuses overlapping bridge networks: a second project's network on the same range
    ip_range = free_range(backend)
    backend.create_network(PROJECT, 71, ip_range, [])
    with pytest.raises(BackendError) as caught:
        backend.create_network(f"{PROJECT}-other", 72, ip_range, [])
    assert caught.value.code == "resource_unavailable" and ip_range in caught.value.message
    backend.delete_network(PROJECT, 71)
    assert subprocess.run(["docker", "network", "inspect", backend._network(PROJECT, 71)], capture_output=True,
                          timeout=30, check=False).returncode != 0
    # every command is bounded in time, a missing CLI is named
    hung = tmp_path / "docker"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    with pytest.raises(BackendError) as caught:
        DockerBackend(state_dir=tmp_path / "state", docker=str(hung), timeout=0.5).server_running(PROJECT, 1)
    assert caught.value.code == "timeout"
    with pytest.raises(BackendError) as caught:
        DockerBackend(state_dir=tmp_path / "state", docker=str(tmp_path / "missing")).delete_load_balancer(PROJECT, 1)
    assert caught.value.code == "backend_unavailable"


def test_remove_project_leaves_nothing(box):
    backend = box["backend"]
    assert sandbox_objects()  # servers a and b, their networks, a volume attached
    start = time.monotonic()
    backend.remove_project(PROJECT)
    box["timings"]["remove_project"] = time.monotonic() - start
    assert sandbox_objects() == []
    project_dir = backend._dir(PROJECT)
    assert not project_dir.exists()
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        assert str(project_dir) not in handle.read()
    # (no probe of the old addresses: without the project's network they route off the host)
