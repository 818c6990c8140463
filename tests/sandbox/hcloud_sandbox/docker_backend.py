"""DockerBackend: sandbox resources made real with the local Docker engine (see backend.py).

What each resource is:
- A server is two containers. `hcsb-<project>-srv<id>-net` ("the wire", `sleep infinity`) owns the
  network namespace: the public address, the private networks, the Cloud Firewall and the
  power-off filter live there and survive power actions and rebuilds, as on Hetzner where they live
  outside the VM. `hcsb-<project>-srv<id>` (the machine) runs systemd from anvil-hetzner/server:<N>
  in that namespace, without --privileged (the capabilities of molecule/*/molecule.yml), and boots
  with Debian's cloud-init from a NoCloud seed (meta-data: instance-id, hostname, public keys;
  user-data: the request's user_data). Rebuild replaces the machine container (a wiped disk) and
  keeps the wire (same addresses).
- Each project has one public Docker network ("the internet"), `hcsb-<project>-public`, with its own
  IPv4 /24 out of 198.18.0.0/15 and IPv6 /48 out of 2001:db8:5a00::/40 (`public_subnet`,
  `public_subnet6`); the host is its gateway (the first address) and NATs it outwards (apt works).
  The API must allocate servers' and load balancers' public addresses from these (Docker refuses
  an address outside its network's subnet).
- A private network is an internal Docker bridge network spanning the network's ip_range, its
  gateway the first host of the first subnet.
- A Cloud Firewall is the nftables table `inet hcloud_sandbox_firewall` in the server's namespace,
  set with the host's nft through nsenter. A table of its own: UFW (iptables-nft's `ip filter`)
  and Docker inside the server neither remove it nor are broken by it; a packet must pass both.
  It filters at prerouting (before the DNAT of Docker's published ports, as Hetzner's firewall sits
  in front of the server) on the public interface only.
- A volume is a sparse disk image with a real ext4/xfs filesystem (made by mkfs in a throwaway
  container of the server image), loop-mounted on the host below the server's `mnt` directory,
  which the machine container sees at /mnt through rslave mount propagation.
- A load balancer is a container running lb_proxy.py (python3 of the test image) on the public
  network and its private networks; its whole wanted state is a JSON file it reloads on SIGHUP.
  It health-checks the targets itself; `load_balancer_status` reads what it reports.

Every Docker object carries the labels `hcloud-sandbox.project`, `hcloud-sandbox.kind` and
`hcloud-sandbox.id`; host state lives in `<state_dir>/<project>/` (`HCLOUD_SANDBOX_STATE_DIR`,
default /var/lib/hcloud-sandbox). `remove_project` (and `cleanup` for a crashed run) find
everything by these. Needs root on the host (nsenter, mount) and the Docker CLI; standard library
only. Every Docker/host command is bounded by a timeout and raises BackendError when it fails.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .backend import BackendError, FirewallRule, LoadBalancerSpec, ServerSpec

LABEL = "hcloud-sandbox"
L_PROJECT, L_KIND, L_ID, L_INDEX = (f"{LABEL}.project", f"{LABEL}.kind", f"{LABEL}.id", f"{LABEL}.public-index")

# Public address pools: RFC 2544's benchmarking range for IPv4 (a /24 per project) and a slice of
# the documentation prefix for IPv6 (a /48 per project), never a real host's address.
PUBLIC_POOL4 = ipaddress.ip_network("198.18.0.0/15")
PUBLIC_POOL6 = ipaddress.ip_network("2001:db8:5a00::/40")
MAX_PROJECTS = 256

IMAGES = {"debian-12": "anvil-hetzner/server:12", "debian-13": "anvil-hetzner/server:13"}
LB_IMAGE = "anvil-hetzner/debian:12"
LB_PROXY = Path(__file__).resolve().parent / "lb_proxy.py"

# systemd as PID 1 without --privileged (the same options as molecule/*/molecule.yml)
SYSTEMD_OPTIONS = ["--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
                   "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                   "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                   "--tmpfs", "/run", "--tmpfs", "/run/lock",
                   # systemd halts cleanly on SIGRTMIN+3 (on SIGTERM it re-executes itself)
                   "--stop-signal", "SIGRTMIN+3"]

FIREWALL_TABLE = "hcloud_sandbox_firewall"
POWER_TABLE = "hcloud_sandbox_power"
ND_TYPES = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert"
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": None, "esp": "esp", "gre": "gre"}


def _safe(project: str) -> str:
    """A Docker-name-safe, unique form of the project name."""
    if re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}", project):
        return project
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", project).strip("-.")[:24] or "p"
    return f"{slug}-{hashlib.sha256(project.encode()).hexdigest()[:8]}"


class DockerBackend:
    """Backend (backend.py) on the local Docker engine. `images` maps API image names to local images."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, images: dict[str, str] | None = None,
                 lb_image: str = LB_IMAGE, docker: str = "docker", timeout: float = 60.0):
        self.state_dir = Path(state_dir or os.environ.get("HCLOUD_SANDBOX_STATE_DIR") or "/var/lib/hcloud-sandbox")
        self.images = dict(IMAGES if images is None else images)
        self.lb_image = lb_image
        self.docker = docker
        self.timeout = timeout
        self._lock = threading.Lock()
        self._shared_root: bool | None = None

    # -- commands --------------------------------------------------------------------------------
    def _run(self, argv: list[str], *, stdin: str | None = None, timeout: float | None = None,
             check: bool = True, what: str | None = None) -> subprocess.CompletedProcess[str]:
        limit = timeout or self.timeout
        label = what or " ".join(argv[:3])
        try:
            proc = bounded_run(argv, stdin, limit)
        except FileNotFoundError as exc:
            raise BackendError("backend_unavailable", f"{argv[0]} is not installed on the sandbox host") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackendError("timeout", f"{label} did not finish within {limit:.0f} s") from exc
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise BackendError("action_failed", f"{label} failed: {' '.join(detail[-3:]) or f'exit {proc.returncode}'}")
        return proc

    def _d(self, *args: str, **kwargs: Any) -> str:
        kwargs.setdefault("what", f"docker {' '.join(args[:2])}")
        return self._run([self.docker, *args], **kwargs).stdout.strip()

    def _exists(self, kind: str, name: str) -> bool:
        return self._run([self.docker, kind, "inspect", name], check=False, what=f"docker {kind} inspect").returncode == 0

    def _inspect(self, name: str) -> dict[str, Any] | None:
        proc = self._run([self.docker, "inspect", name], check=False, what="docker inspect")
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)[0]

    def _labels(self, project: str, kind: str, ident: int | str) -> list[str]:
        return ["--label", f"{L_PROJECT}={project}", "--label", f"{L_KIND}={kind}", "--label", f"{L_ID}={ident}"]

    # -- names and places ------------------------------------------------------------------------
    def _server(self, project: str, server_id: int) -> str:
        return f"hcsb-{_safe(project)}-srv{server_id}"

    def _wire(self, project: str, server_id: int) -> str:
        return f"hcsb-{_safe(project)}-srv{server_id}-net"

    def _network(self, project: str, network_id: int) -> str:
        return f"hcsb-{_safe(project)}-net{network_id}"

    def _public(self, project: str) -> str:
        return f"hcsb-{_safe(project)}-public"

    def _lb(self, project: str, lb_id: int) -> str:
        return f"hcsb-{_safe(project)}-lb{lb_id}"

    def machine(self, project: str, server_id: int) -> str:
        """The name of the server's machine container (for `docker exec` in tests)."""
        return self._server(project, server_id)

    def _dir(self, project: str, *parts: str | int) -> Path:
        return self.state_dir.joinpath(_safe(project), *map(str, parts))

    # -- the project's public network ------------------------------------------------------------
    def public_subnet(self, project: str) -> str:
        """The project's public IPv4 subnet (a /24). The API allocates server and load balancer
        addresses from its hosts after the first (the first is the gateway: the sandbox host)."""
        return self._public_net(project)[0]

    def public_subnet6(self, project: str) -> str:
        """The project's public IPv6 prefix (a /48). The API gives each server a /64 of it after the
        first (whose ::1 is the gateway) and passes its ::1 as ServerSpec.public_ipv6."""
        return self._public_net(project)[1]

    def public_gateway(self, project: str) -> str:
        """The sandbox host's address on the project's public network (the source of its traffic)."""
        return str(next(ipaddress.ip_network(self.public_subnet(project)).hosts()))

    def _public_net(self, project: str) -> tuple[str, str]:
        with self._lock:
            net = self._inspect_network(self._public(project))
            if net is None:
                net = self._create_public(project)
        v4 = [c["Subnet"] for c in net["IPAM"]["Config"] if ":" not in c["Subnet"]]
        v6 = [c["Subnet"] for c in net["IPAM"]["Config"] if ":" in c["Subnet"]]
        return v4[0], v6[0]

    def _inspect_network(self, name: str) -> dict[str, Any] | None:
        proc = self._run([self.docker, "network", "inspect", name], check=False, what="docker network inspect")
        return json.loads(proc.stdout)[0] if proc.returncode == 0 else None

    def _create_public(self, project: str) -> dict[str, Any]:
        taken = self._used_subnets()
        for index in range(MAX_PROJECTS):
            v4 = list(PUBLIC_POOL4.subnets(new_prefix=24))[index]
            v6 = list(PUBLIC_POOL6.subnets(new_prefix=48))[index]
            if any(v4.overlaps(t) for t in taken if t.version == 4) or any(v6.overlaps(t) for t in taken if t.version == 6):
                continue
            proc = self._run([self.docker, "network", "create", "--driver", "bridge", "--ipv6",
                              "--subnet", str(v4), "--gateway", str(next(v4.hosts())),
                              "--subnet", str(v6), "--gateway", str(v6[1]),
                              *self._labels(project, "public", "public"), "--label", f"{L_INDEX}={index}",
                              self._public(project)], check=False, what="docker network create (public)")
            if proc.returncode != 0:
                if "overlaps" in proc.stderr:  # another sandbox took it meanwhile
                    continue
                raise BackendError("action_failed", f"docker network create {self._public(project)}: "
                                                    f"{proc.stderr.strip()}")
            net = self._inspect_network(self._public(project))
            assert net is not None
            return net
        raise BackendError("resource_unavailable", f"no free public /24 left in {PUBLIC_POOL4} for project {project!r}")

    def _used_subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        used: list[Any] = []
        ids = self._d("network", "ls", "-q").split()
        if ids:
            for line in self._d("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids).splitlines():
                used += [ipaddress.ip_network(s, strict=False) for s in line.split()]
        for family in ("-4", "-6"):
            for route in json.loads(self._run(["ip", "-j", family, "route"], what="ip route").stdout or "[]"):
                if route.get("dst") not in (None, "default"):
                    used.append(ipaddress.ip_network(route["dst"], strict=False))
        return used

    # -- host state and mount propagation --------------------------------------------------------
    def _ensure_shared_root(self) -> None:
        """The state directory is a shared mount, so that a loop mount made below a server's mnt
        directory later propagates into the machine container (mounted there rslave)."""
        with self._lock:
            if self._shared_root:
                return
            self.state_dir.mkdir(parents=True, exist_ok=True)
            root = str(self.state_dir.resolve())
            if not any(m[1] == root for m in _mounts()):
                self._run(["mount", "--bind", root, root], what="mount --bind (state directory)")
            self._run(["mount", "--make-rshared", root], what="mount --make-rshared (state directory)")
            self._shared_root = True

    def _umount_below(self, path: Path) -> None:
        """Unmount everything at or below `path`, deepest first (a lazy unmount where busy)."""
        base = str(path.resolve()) if path.exists() else str(path)
        targets = sorted({m[1] for m in _mounts() if m[1] == base or m[1].startswith(base + "/")},
                         key=len, reverse=True)
        for target in targets:
            if self._run(["umount", target], check=False, what=f"umount {target}").returncode != 0:
                self._run(["umount", "-l", target], what=f"umount -l {target}")

    def _remove_tree(self, path: Path) -> None:
        """rm -rf that never deletes through a mount (a volume's data)."""
        if not path.exists():
            return
        self._umount_below(path)
        base = str(path.resolve())
        if any(m[1] == base or m[1].startswith(base + "/") for m in _mounts()):
            raise BackendError("action_failed", f"{path} still has mounts below it; not removing it")
        shutil.rmtree(path)

    # -- servers -----------------------------------------------------------------------------------
    def create_server(self, spec: ServerSpec) -> None:
        image = self._image(spec.image)
        self._ensure_shared_root()
        project, sid = spec.project, spec.server_id
        for name in (self._server(project, sid), self._wire(project, sid)):  # leftovers of a crash
            self._run([self.docker, "rm", "-f", "-v", name], check=False, what="docker rm")
        base = self._dir(project, "servers", sid)
        (base / "mnt").mkdir(parents=True, exist_ok=True)
        self._write_spec(spec)

        wire = self._wire(project, sid)
        if spec.public_ipv4 or spec.public_ipv6:
            self.public_subnet(project)
            first = ["--network", self._public(project)] + (["--ip", spec.public_ipv4] if spec.public_ipv4 else [])
            rest = spec.private
        elif spec.private:
            first = ["--network", self._network(project, spec.private[0][0]), "--ip", spec.private[0][1]]
            rest = spec.private[1:]
        else:
            first, rest = ["--network", "none"], []
        self._d("run", "-d", "--name", wire, "--hostname", spec.name, *self._labels(project, "server-net", sid),
                *first, "--entrypoint", "sleep", image, "infinity")
        for network_id, ip in rest:
            self.attach_network(project, sid, network_id, ip)
        self._configure_wire(project, sid)
        self._start_machine(spec, image)

    def _image(self, name: str) -> str:
        image = self.images.get(name)
        if image is None:
            raise BackendError("unsupported_error", f"image {name!r} has no sandbox machine image "
                                                    f"(known: {', '.join(sorted(self.images))})")
        if not self._exists("image", image):
            raise BackendError("resource_unavailable", f"machine image {image} is not built "
                                                       "(run tests/images/build-server.sh)")
        return image

    def _write_spec(self, spec: ServerSpec) -> None:
        base = self._dir(spec.project, "servers", spec.server_id)
        seed = base / "seed"
        seed.mkdir(parents=True, exist_ok=True)
        generation = int(time.time() * 1000)
        meta = {"instance-id": f"hcsb-{spec.server_id}-{generation}", "local-hostname": spec.name,
                "hostname": spec.name, "public-keys": list(spec.ssh_keys)}
        (seed / "meta-data").write_text(json.dumps(meta, indent=1) + "\n")  # JSON is YAML
        (seed / "user-data").write_text(spec.user_data or "")
        (seed / "vendor-data").write_text("")
        (base / "spec.json").write_text(json.dumps({"public_ipv4": spec.public_ipv4,
                                                    "public_ipv6": spec.public_ipv6, "name": spec.name}))

    def _start_machine(self, spec: ServerSpec, image: str) -> None:
        base = self._dir(spec.project, "servers", spec.server_id)
        self._d("run", "-d", "--name", self._server(spec.project, spec.server_id),
                *self._labels(spec.project, "server", spec.server_id), "--label", f"{LABEL}.name={spec.name}",
                "--network", f"container:{self._wire(spec.project, spec.server_id)}", *SYSTEMD_OPTIONS,
                "-v", f"{base / 'seed'}:/var/lib/cloud/seed/nocloud:ro",
                "-v", f"{base / 'mnt'}:/mnt:rslave",
                # Docker's data on a real filesystem, as on a server's ext4 disk: the server's Docker
                # then stores images with overlay2 (on the container's own overlay root it falls back
                # to vfs, a full copy of an image per container). An anonymous volume: it goes with
                # the machine (docker rm -v: delete, rebuild) and stays across a power cycle.
                "-v", "/var/lib/docker",
                image, "/lib/systemd/systemd")

    def _pid(self, name: str) -> int:
        info = self._inspect(name)
        if info is None or not info["State"]["Running"]:
            raise BackendError("action_failed", f"container {name} is not running")
        return int(info["State"]["Pid"])

    def _netns(self, project: str, server_id: int, argv: list[str], stdin: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        pid = self._pid(self._wire(project, server_id))
        return self._run(["nsenter", "-t", str(pid), "-n", *argv], stdin=stdin, check=check,
                         what=f"{argv[0]} in server {server_id}'s network namespace")

    def _public_if(self, project: str, server_id: int) -> str | None:
        """The interface of the public network in the server's namespace (found by its MAC)."""
        info = self._inspect(self._wire(project, server_id))
        endpoint = (info or {}).get("NetworkSettings", {}).get("Networks", {}).get(self._public(project))
        if not endpoint:
            return None
        for link in json.loads(self._netns(project, server_id, ["ip", "-j", "link"]).stdout or "[]"):
            if link.get("address") == endpoint["MacAddress"]:
                return str(link["ifname"])
        raise BackendError("action_failed", f"server {server_id}: no interface with MAC {endpoint['MacAddress']}")

    def _configure_wire(self, project: str, server_id: int) -> None:
        """Public addresses as the API gave them (Docker 20.10's IPAM cuts IPv6 addresses outside a
        /48's first /64, so the backend sets the server's address itself), then the saved firewall."""
        wanted = json.loads((self._dir(project, "servers", server_id) / "spec.json").read_text())
        iface = self._public_if(project, server_id)
        if iface is not None:
            addrs = json.loads(self._netns(project, server_id, ["ip", "-j", "addr", "show", "dev", iface]).stdout)
            have = [(a["family"], a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"] if a.get("scope") == "global"]
            for family, local, prefix in have:
                keep = (family == "inet" and local == wanted["public_ipv4"]) or \
                       (family == "inet6" and local == wanted["public_ipv6"])
                if not keep:
                    self._netns(project, server_id, ["ip", "addr", "del", f"{local}/{prefix}", "dev", iface])
            if wanted["public_ipv6"] and not any(local == wanted["public_ipv6"] for family, local, prefix in have):
                self._netns(project, server_id, ["ip", "-6", "addr", "add", f"{wanted['public_ipv6']}/48",
                                                 "dev", iface, "nodad"])
            if wanted["public_ipv6"]:
                gateway6 = str(ipaddress.ip_network(self.public_subnet6(project))[1])
                self._netns(project, server_id, ["ip", "-6", "route", "replace", "default", "via", gateway6,
                                                 "dev", iface])
        saved = self._dir(project, "servers", server_id) / "firewall.json"
        if saved.exists():
            state = json.loads(saved.read_text())
            self.set_firewall(project, server_id, [FirewallRule(**r) for r in state["rules"]], state["applied"])

    def _ensure_wire(self, project: str, server_id: int) -> None:
        """The wire runs (it stops only when the Docker engine restarted or someone stopped it):
        start it, set it up again, and restart a running machine into the new namespace."""
        wire = self._wire(project, server_id)
        info = self._inspect(wire)
        if info is None:
            raise BackendError("not_found", f"server {server_id} has no machine (container {wire} is missing)")
        if not info["State"]["Running"]:
            self._d("start", wire)
            self._configure_wire(project, server_id)
            if self.server_running(project, server_id):
                self._d("restart", "-t", "60", self._server(project, server_id), timeout=120)

    def _power_filter(self, project: str, server_id: int, off: bool) -> None:
        """A powered-off server answers nothing (not even a TCP reset) on any network."""
        script = f"table inet {POWER_TABLE} {{}}\ndelete table inet {POWER_TABLE}\n"
        if off:
            script += (f"table inet {POWER_TABLE} {{\n chain drop_all {{\n"
                       "  type filter hook prerouting priority -300; policy drop;\n  iifname \"lo\" accept\n }\n}\n")
        self._netns(project, server_id, ["nft", "-f", "-"], stdin=script)

    def delete_server(self, project: str, server_id: int) -> None:
        for name in (self._server(project, server_id), self._wire(project, server_id)):
            self._run([self.docker, "rm", "-f", "-v", name], timeout=90, check=False, what="docker rm -f")
            if self._exists("container", name):
                raise BackendError("action_failed", f"container {name} could not be removed")
        for volume in self._attached_volumes(project, server_id):
            self.detach_volume(project, volume, server_id)
        self._remove_tree(self._dir(project, "servers", server_id))

    def power_on(self, project: str, server_id: int) -> None:
        self._ensure_wire(project, server_id)
        machine = self._server(project, server_id)
        info = self._inspect(machine)
        if info is None:
            raise BackendError("not_found", f"server {server_id} has no machine container {machine}")
        if not info["State"]["Running"]:
            self._d("start", machine)
        self._power_filter(project, server_id, off=False)

    def power_off(self, project: str, server_id: int, graceful: bool) -> None:
        machine = self._server(project, server_id)
        if graceful:
            self._d("stop", "-t", "60", machine, timeout=90)
        else:
            self._d("kill", machine, check=False)
            self._d("stop", "-t", "0", machine)  # no-op when already stopped
        if self._inspect(self._wire(project, server_id)) is not None:
            self._ensure_wire(project, server_id)
            self._power_filter(project, server_id, off=True)

    def reboot(self, project: str, server_id: int, hard: bool) -> None:
        self._ensure_wire(project, server_id)
        machine = self._server(project, server_id)
        if hard:
            self._d("kill", machine, check=False)
            self._d("start", machine)
        else:
            self._d("restart", "-t", "60", machine, timeout=120)
        self._power_filter(project, server_id, off=False)

    def rebuild(self, spec: ServerSpec) -> None:
        image = self._image(spec.image)
        self._ensure_wire(spec.project, spec.server_id)
        machine = self._server(spec.project, spec.server_id)
        self._run([self.docker, "rm", "-f", "-v", machine], timeout=90, check=False, what="docker rm -f")
        self._write_spec(spec)
        self._configure_wire(spec.project, spec.server_id)
        self._start_machine(spec, image)
        self._power_filter(spec.project, spec.server_id, off=False)

    def server_running(self, project: str, server_id: int) -> bool:
        info = self._inspect(self._server(project, server_id))
        return bool(info and info["State"]["Running"])

    # -- networks ----------------------------------------------------------------------------------
    def create_network(self, project: str, network_id: int, ip_range: str, subnets: list[str]) -> None:
        """An internal bridge spanning ip_range (so subnets added later need no change); the bridge
        (the sandbox host) takes the gateway address: the first host of the first subnet."""
        name = self._network(project, network_id)
        if self._exists("network", name):
            return
        first = ipaddress.ip_network(subnets[0] if subnets else ip_range, strict=False)
        proc = self._run([self.docker, "network", "create", "--driver", "bridge", "--internal",
                          "--subnet", ip_range, "--gateway", str(next(first.hosts())),
                          *self._labels(project, "network", network_id), name], check=False,
                         what="docker network create")
        if proc.returncode != 0:
            if "overlaps" in proc.stderr:
                raise BackendError("resource_unavailable", f"ip_range {ip_range} overlaps a network that exists on "
                                   "the sandbox's Docker engine (another project's?): Docker refuses two bridge "
                                   "networks with overlapping ranges, give each project its own range")
            raise BackendError("action_failed", f"docker network create {name}: {proc.stderr.strip()}")

    def delete_network(self, project: str, network_id: int) -> None:
        name = self._network(project, network_id)
        net = self._inspect_network(name)
        if net is None:
            return
        for container in (net.get("Containers") or {}).values():
            self._run([self.docker, "network", "disconnect", "-f", name, container["Name"]], check=False,
                      what="docker network disconnect")
        self._d("network", "rm", name)

    def attach_network(self, project: str, server_id: int, network_id: int, ip: str) -> None:
        self._d("network", "connect", "--ip", ip, self._network(project, network_id), self._wire(project, server_id))

    def detach_network(self, project: str, server_id: int, network_id: int) -> None:
        proc = self._run([self.docker, "network", "disconnect", "-f", self._network(project, network_id),
                          self._wire(project, server_id)], check=False, what="docker network disconnect")
        if proc.returncode != 0 and "is not connected" not in proc.stderr and "No such" not in proc.stderr:
            raise BackendError("action_failed", f"docker network disconnect: {proc.stderr.strip()}")

    # -- Cloud Firewalls ---------------------------------------------------------------------------
    def set_firewall(self, project: str, server_id: int, rules: list[FirewallRule], applied: bool) -> None:
        base = self._dir(project, "servers", server_id)
        base.mkdir(parents=True, exist_ok=True)
        state = {"applied": applied, "rules": [vars(r) for r in rules]}
        (base / "firewall.json").write_text(json.dumps(state))
        iface = self._public_if(project, server_id)
        script = firewall_ruleset(iface, rules, applied)
        self._netns(project, server_id, ["nft", "-f", "-"], stdin=script)

    # -- volumes -----------------------------------------------------------------------------------
    def create_volume(self, project: str, volume_id: int, size: int, fmt: str | None) -> None:
        """A sparse disk image of `size` GiB with a filesystem. An unformatted volume (fmt None) gets
        ext4 too: a raw block device cannot be handed to a running container without --privileged."""
        self._ensure_shared_root()
        base = self._dir(project, "volumes", volume_id)
        base.mkdir(parents=True, exist_ok=True)
        disk = base / "disk.img"
        if disk.exists():
            return
        with open(disk, "wb") as handle:
            handle.truncate(size * 1024**3)
        fs = fmt or "ext4"
        mkfs = ["mkfs.xfs", "-q", "-f", "/v/disk.img"] if fs == "xfs" else \
            ["mkfs.ext4", "-q", "-F", "-L", f"HC_Volume_{volume_id}"[:16], "/v/disk.img"]
        try:
            self._d("run", "--rm", "--network", "none", *self._labels(project, "mkfs", volume_id),
                    "-v", f"{base}:/v", "--entrypoint", mkfs[0], self._image(next(iter(sorted(self.images)))),
                    *mkfs[1:],
                    timeout=300)
        except BackendError:
            disk.unlink()
            raise
        (base / "format").write_text(fs)

    def delete_volume(self, project: str, volume_id: int) -> None:
        state = self._volume_state(project, volume_id)
        if state.get("server") is not None:
            self.detach_volume(project, volume_id, state["server"])
        self._remove_tree(self._dir(project, "volumes", volume_id))

    def attach_volume(self, project: str, volume_id: int, server_id: int, mount_path: str) -> None:
        path = Path(os.path.normpath(mount_path))
        if path.parent != Path("/mnt"):
            raise BackendError("unsupported_error", f"mount path {mount_path}: the sandbox mounts volumes only "
                                                    "directly below /mnt (where Hetzner's automount puts them)")
        base = self._dir(project, "volumes", volume_id)
        if not (base / "disk.img").exists():
            raise BackendError("not_found", f"volume {volume_id} has no disk")
        state = self._volume_state(project, volume_id)
        if state.get("server") not in (None, server_id):
            raise BackendError("action_failed", f"volume {volume_id} is attached to server {state['server']}")
        target = self._dir(project, "servers", server_id, "mnt", path.name)
        target.mkdir(parents=True, exist_ok=True)
        if not any(m[1] == str(target.resolve()) for m in _mounts()):
            self._run(["mount", "-o", "loop", str(base / "disk.img"), str(target)], what=f"mount volume {volume_id}")
        (base / "attached.json").write_text(json.dumps({"server": server_id, "target": str(target)}))

    def detach_volume(self, project: str, volume_id: int, server_id: int) -> None:
        base = self._dir(project, "volumes", volume_id)
        state = self._volume_state(project, volume_id)
        if state.get("server") != server_id:
            return
        target = Path(state["target"])
        self._umount_below(target)
        if target.exists() and not any(m[1] == str(target.resolve()) for m in _mounts()):
            target.rmdir()
        (base / "attached.json").unlink()

    def _volume_state(self, project: str, volume_id: int) -> dict[str, Any]:
        path = self._dir(project, "volumes", volume_id, "attached.json")
        return json.loads(path.read_text()) if path.exists() else {}

    def _attached_volumes(self, project: str, server_id: int) -> list[int]:
        root = self._dir(project, "volumes")
        found = []
        for entry in root.iterdir() if root.exists() else []:
            if entry.name.isdigit() and self._volume_state(project, int(entry.name)).get("server") == server_id:
                found.append(int(entry.name))
        return found

    # -- load balancers ----------------------------------------------------------------------------
    def apply_load_balancer(self, spec: LoadBalancerSpec) -> None:
        """Write the whole wanted state, create or reconnect the proxy container, reload it (SIGHUP)
        and wait until the proxy reports this generation live. Connections in flight stay open."""
        project, name = spec.project, self._lb(spec.project, spec.lb_id)
        base = self._dir(project, "lbs", spec.lb_id)
        base.mkdir(parents=True, exist_ok=True)
        generation = int(time.time() * 1e6)
        config = {"generation": generation, "algorithm": spec.algorithm, "services": spec.services,
                  "targets": spec.targets}
        tmp = base / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=1))
        tmp.replace(base / "config.json")

        wanted: dict[str, str | None] = {}
        if spec.public_ipv4:
            self.public_subnet(project)
            wanted[self._public(project)] = spec.public_ipv4
        for network_id, ip in spec.private:
            wanted[self._network(project, network_id)] = ip
        info = self._inspect(name)
        was_running = bool(info and info["State"]["Running"])
        if info is None:
            first = next(iter(wanted.items()), None)
            net = ["--network", first[0], "--ip", str(first[1])] if first else ["--network", "none"]
            self._d("run", "-d", "--name", name, *self._labels(project, "load_balancer", spec.lb_id),
                    "--label", f"{LABEL}.name={spec.name}", *net,
                    "-v", f"{LB_PROXY}:/opt/lb_proxy.py:ro", "-v", f"{base}:/etc/lb",
                    "--entrypoint", "python3", self.lb_image, "-u", "/opt/lb_proxy.py", "/etc/lb/config.json")
            info = self._inspect(name)
        elif not info["State"]["Running"]:
            self._d("start", name)
        have = {net: ep.get("IPAddress") for net, ep in (info or {}).get("NetworkSettings", {}).get("Networks", {}).items()}
        for net, ip in have.items():
            if net not in wanted or wanted[net] != ip:
                self._d("network", "disconnect", "-f", net, name)
        for net, ip in wanted.items():
            if have.get(net) != ip:
                self._d("network", "connect", "--ip", str(ip), net, name)
        if was_running:  # a proxy that just started reads its configuration itself
            self._d("kill", "-s", "HUP", name)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status = self.load_balancer_status(project, spec.lb_id)
            if status.get("generation") == generation:
                if status.get("errors"):
                    raise BackendError("action_failed", f"load balancer {spec.lb_id}: {'; '.join(status['errors'])}")
                return
            time.sleep(0.1)
        raise BackendError("timeout", f"load balancer {spec.lb_id}'s proxy did not load its configuration within 15 s")

    def load_balancer_status(self, project: str, lb_id: int) -> dict[str, Any]:
        """What the proxy reports: {"generation", "errors", "health": {"<listen_port>": {"<ip>": "healthy" |
        "unhealthy" | "unknown"}}} (for the API's target health_status; {} before the first report)."""
        path = self._dir(project, "lbs", lb_id, "status.json")
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def delete_load_balancer(self, project: str, lb_id: int) -> None:
        name = self._lb(project, lb_id)
        self._run([self.docker, "rm", "-f", name], check=False, what="docker rm -f")
        if self._exists("container", name):
            raise BackendError("action_failed", f"container {name} could not be removed")
        self._remove_tree(self._dir(project, "lbs", lb_id))

    # -- everything of a project -------------------------------------------------------------------
    def remove_project(self, project: str) -> None:
        self._remove_labelled([f"label={L_PROJECT}={project}"])
        self._remove_tree(self.state_dir / _safe(project))

    def cleanup(self) -> None:
        """Remove every sandbox object of every project (after a crash): containers, networks,
        volumes labelled hcloud-sandbox.*, and the state directory's contents."""
        self._remove_labelled([f"label={L_PROJECT}"])
        if self.state_dir.exists():
            for entry in self.state_dir.iterdir():
                self._remove_tree(entry)

    def close(self) -> None:
        """Undo the state directory's bind mount (made for propagation) when nothing is left below it."""
        root = str(self.state_dir.resolve())
        mounts = _mounts()
        if any(m[1].startswith(root + "/") for m in mounts):
            return
        if any(m[1] == root for m in mounts):
            self._run(["umount", root], what="umount (state directory)")
        self._shared_root = None

    def _remove_labelled(self, filters: list[str]) -> None:
        flags = [arg for f in filters for arg in ("--filter", f)]
        containers = self._d("ps", "-aq", *flags).split()
        if containers:
            self._d("rm", "-f", "-v", *containers, timeout=120)
        networks = self._d("network", "ls", "-q", *flags).split()
        if networks:
            self._d("network", "rm", *networks)
        volumes = self._d("volume", "ls", "-q", *flags).split()
        if volumes:
            self._d("volume", "rm", "-f", *volumes)


def bounded_run(argv: list[str], stdin: str | None, limit: float) -> subprocess.CompletedProcess[str]:
    """subprocess.run(capture_output=True, text=True) that returns within `limit` + 10 s whatever the
    command does: on time out its whole process group is killed, and a process the kernel holds
    (uninterruptible, in a mount or a disk operation) or a descendant that keeps the output open is
    not waited for (subprocess.run waits for both without a bound). Raises TimeoutExpired."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # left to the kernel; its pipes close with this object
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _mounts() -> list[tuple[str, str]]:
    """(source, mount point) of every mount of this process's namespace."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            found.append((fields[3], fields[4].encode().decode("unicode_escape")))
    return found


def firewall_ruleset(iface: str | None, rules: list[FirewallRule], applied: bool) -> str:
    """The nft script that replaces the server's firewall table (atomically: one transaction).

    Inbound on the public interface: replies to the server's own connections and IPv6 neighbour
    discovery pass, then what a rule allows, the rest is dropped. Outbound is filtered only when
    some "out" rule exists. The private networks and loopback are never filtered (as on Hetzner)."""
    script = f"table inet {FIREWALL_TABLE} {{}}\ndelete table inet {FIREWALL_TABLE}\n"
    if not applied or iface is None:
        return script
    inbound = [r for r in rules if r.direction == "in"]
    outbound = [r for r in rules if r.direction == "out"]
    lines = [f"table inet {FIREWALL_TABLE} {{",
             " chain inbound {",
             "  type filter hook prerouting priority -150; policy accept;",
             f"  iifname != {json.dumps(iface)} accept",
             "  ct state established,related accept",
             f"  icmpv6 type {{ {ND_TYPES} }} accept",
             *[f"  {m} accept" for r in inbound for m in _matches(r, r.source_ips, "saddr")],
             "  counter drop",
             " }"]
    if outbound:
        lines += [" chain outbound {",
                  "  type filter hook postrouting priority 0; policy accept;",
                  f"  oifname != {json.dumps(iface)} accept",
                  "  ct state established,related accept",
                  f"  icmpv6 type {{ {ND_TYPES} }} accept",
                  *[f"  {m} accept" for r in outbound for m in _matches(r, r.destination_ips, "daddr")],
                  "  counter drop",
                  " }"]
    lines.append("}")
    return script + "\n".join(lines) + "\n"


def _matches(rule: FirewallRule, addresses: list[str], side: str) -> list[str]:
    """One nft match per address (anonymous sets refuse overlapping prefixes)."""
    if rule.protocol not in PROTOCOLS:
        raise BackendError("invalid_input", f"firewall rule protocol {rule.protocol!r} is not one of {sorted(PROTOCOLS)}")
    out = []
    for text in addresses:
        net = ipaddress.ip_network(text, strict=False)
        family = "ip" if net.version == 4 else "ip6"
        where = f"{family} {side} {net}"
        if rule.protocol in ("tcp", "udp"):
            port = "" if rule.port in (None, "any") else f" {rule.protocol} dport {str(rule.port).replace(' ', '')}"
            out.append(f"{where} meta l4proto {rule.protocol}{port}")
        elif rule.protocol == "icmp":
            out.append(f"{where} meta l4proto {'icmp' if net.version == 4 else 'ipv6-icmp'}")
        else:
            out.append(f"{where} meta l4proto {rule.protocol}")
    return out
