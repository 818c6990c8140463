"""The host_probe module, run for real on this machine through ansible's module runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.anvil.hetzner.plugins.modules.host_probe import weak_moduli

ROOT = Path(__file__).resolve().parents[2]


def invoke(args: dict, path_prefix: str | None = None) -> str:
    """The module run through ``ansible`` on this machine: its one-line output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{path_prefix + ':' if path_prefix else ''}{Path(sys.executable).parent}:{env.get('PATH', '')}"
    out = subprocess.run(
        ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "anvil.hetzner.host_probe", "-a", json.dumps(args), "-o"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return out.stdout + out.stderr


def run(args: dict) -> dict:
    out = invoke(args)
    assert " | SUCCESS => " in out, out
    return json.loads(out.split(" | SUCCESS => ", 1)[1].splitlines()[0])


def fail(args: dict, path_prefix: str | None = None) -> str:
    """The module's failure message for ``args`` (it must fail)."""
    out = invoke(args, path_prefix)
    assert " | FAILED! => " in out, out
    return json.loads(out.split(" | FAILED! => ", 1)[1].splitlines()[0])["msg"]


def test_paths_users_and_packages(tmp_path):
    (tmp_path / "a.log").write_text("x")
    result = run({"paths": [str(tmp_path / "*.log"), str(tmp_path / "none")], "users": ["root", "no-such-user-x"],
                  "packages": ["dpkg", "no-such-package-x"]})
    assert result["changed"] is False
    assert result["exists"] == {str(tmp_path / "*.log"): True, str(tmp_path / "none"): False}
    assert result["missing_users"] == ["no-such-user-x"]
    assert result["installed_packages"] == ["dpkg"]


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="needs systemd-analyze")
def test_calendars_are_judged_by_systemd_analyze():
    result = run({"calendars": ["daily", "Mon *-*-* 04:00", "every tuesday-ish", "25:99"]})
    assert result["calendars_checked"] is True
    assert result["invalid_calendars"] == ["every tuesday-ish", "25:99"]


def test_weak_moduli_counts_short_groups(tmp_path):
    moduli = tmp_path / "moduli"
    moduli.write_text("# comment\n20230101 2 6 100 2047 2 FFFF\n20230101 2 6 100 3071 2 FFFF\n"
                      "20230101 2 6 100 4095 5 FFFF\n")
    assert weak_moduli(str(moduli), 3072) == 1
    assert weak_moduli(str(moduli), 4096) == 2
    assert weak_moduli(str(tmp_path / "missing"), 3072) == 0


def test_home_paths_and_file_facts(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import describe, home_path
    import pwd
    root_home = pwd.getpwnam("root").pw_dir
    assert home_path("~root/.ssh/authorized_keys") == f"{root_home}/.ssh/authorized_keys"
    assert home_path("~no-such-user-x/.ssh/x") == "~no-such-user-x/.ssh/x"
    assert home_path("/etc/passwd") == "/etc/passwd"
    f = tmp_path / "f"
    f.write_text("a = 1\n")
    f.chmod(0o640)
    entry = describe(str(f))
    assert entry["exists"] and not entry["isdir"] and entry["mode"] == "0640"
    import hashlib
    assert entry["sha1"] == hashlib.sha1(b"a = 1\n").hexdigest()
    assert describe(str(tmp_path))["isdir"] is True
    assert describe(str(tmp_path / "missing"))["exists"] is False


LISTENER = r"""
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, b"anvil-probe-t", 0, 0, 0)  # PR_SET_NAME: the kernel's comm of this process
tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0))
tcp6 = socket.socket(socket.AF_INET6); tcp6.bind(("::1", 0)); tcp6.listen()
# a connected TCP socket and a connected UDP one: not listening, never reported
client = socket.create_connection(tcp.getsockname()); accepted = tcp.accept()[0]
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); peer.connect(udp.getsockname())
print(tcp.getsockname()[1], udp.getsockname()[1], tcp6.getsockname()[1], client.getsockname()[1],
      peer.getsockname()[1], flush=True)
sys.stdin.read()  # until the test closes stdin
"""


@pytest.fixture()
def listener():
    """A process named anvil-probe-t listening on loopback (TCP, UDP, TCP over ::1), with connected sockets."""
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        ports = [int(port) for port in proc.stdout.readline().split()]
        assert len(ports) == 5, "the listener did not start"
        yield proc.pid, ports
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_listening_ports_name_the_process_that_holds_them(listener):
    pid, (tcp, udp, tcp6, client, peer) = listener
    result = run({"listening_ports": True})
    mine = [entry for entry in result["listening"] if entry["pid"] == pid]
    expected = [{"port": tcp, "proto": "tcp", "address": "127.0.0.1"},
                {"port": udp, "proto": "udp", "address": "127.0.0.1"},
                {"port": tcp6, "proto": "tcp", "address": "::1"}]
    assert sorted(({k: e[k] for k in ("port", "proto", "address")} for e in mine), key=lambda e: e["port"]) == \
        sorted(expected, key=lambda e: e["port"])
    for entry in mine:
        assert entry["process"] == "anvil-probe-t"
        assert entry["exe"] == os.path.realpath(sys.executable)
    # the client ends of connections are not listening sockets, whoever holds them
    ports = {(entry["port"], entry["proto"]) for entry in result["listening"]}
    assert (client, "tcp") not in ports and (peer, "udp") not in ports
    assert result["listening"] == sorted(result["listening"], key=lambda e: (e["port"], e["proto"], e["address"]))


def test_listening_ports_only_when_asked(listener):
    assert run({"paths": []})["listening"] == []


def test_proc_addresses_decode_both_families():
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import proc_address
    # as /proc/net/tcp and tcp6 print them on a little-endian host
    assert proc_address("0100007F:0016") == ("127.0.0.1", 22)
    assert proc_address("00000000:1F90") == ("0.0.0.0", 8080)
    assert proc_address("00000000000000000000000001000000:01BB") == ("::1", 443)
    assert proc_address("0000000000000000FFFF00000100007F:0050") == ("::ffff:127.0.0.1", 80)


def test_units_from_cgroup_files(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import process_unit
    for pid, text, unit in ((1, "0::/system.slice/ssh.service\n", "ssh.service"),
                            (2, "12:memory:/x\n1:name=systemd:/system.slice/docker-ab.scope/system.slice/"
                                "prometheus-node-exporter.service\n", "prometheus-node-exporter.service"),
                            (3, "0::/\n", ""), (4, None, "")):
        (tmp_path / str(pid)).mkdir()
        if text is not None:
            (tmp_path / str(pid) / "cgroup").write_text(text)
        assert process_unit(pid, str(tmp_path)) == unit


def test_users_with_their_groups():
    import grp
    import pwd
    result = run({"users": ["root", "nobody", "no-such-user-x"]})
    root = {key: result["users"]["root"][key] for key in ("exists", "uid", "gid", "groups", "shell")}
    assert root == {"exists": True, "uid": 0, "gid": 0, "shell": pwd.getpwnam("root").pw_shell,
                    "groups": sorted({grp.getgrgid(0).gr_name} | {g.gr_name for g in grp.getgrall() if "root" in g.gr_mem})}
    nobody = pwd.getpwnam("nobody")
    assert result["users"]["nobody"]["uid"] == nobody.pw_uid
    assert grp.getgrgid(nobody.pw_gid).gr_name in result["users"]["nobody"]["groups"]
    assert result["users"]["no-such-user-x"] == {"exists": False, "uid": None, "gid": None, "groups": [],
                                                 "shell": "", "max_days": None}
    assert result["missing_users"] == ["no-such-user-x"]


def test_maximum_password_age_is_read_from_the_shadow_file(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import accounts, shadow_max_days
    shadow = tmp_path / "shadow"
    shadow.write_text("root:*:19000:0:99999:7:::\ndeploy:!:19000:0::7:::\nbroken\n")
    assert shadow_max_days(str(shadow)) == {"root": 99999, "deploy": None}
    assert accounts(["root"], str(shadow))["root"]["max_days"] == 99999
    # an unreadable or missing file: unknown, not an error
    assert shadow_max_days(str(tmp_path / "missing")) == {}


def test_supplementary_groups_are_read_from_the_group_database(monkeypatch):
    from ansible_collections.anvil.hetzner.plugins.modules import host_probe
    import grp
    import pwd
    monkeypatch.setattr(pwd, "getpwnam", lambda name: pwd.struct_passwd((name, "x", 1001, 1001, "", "/", "/bin/sh")))
    monkeypatch.setattr(grp, "getgrall", lambda: [grp.struct_group(("sudo", "x", 27, ["alice"])),
                                                  grp.struct_group(("docker", "x", 999, ["bob", "alice"])),
                                                  grp.struct_group(("adm", "x", 4, ["bob"]))])
    monkeypatch.setattr(grp, "getgrgid", lambda gid: grp.struct_group(("alice", "x", gid, [])))
    assert host_probe.accounts(["alice"])["alice"]["groups"] == ["alice", "docker", "sudo"]


def test_contents_are_read_whole_or_null(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import file_text
    text = tmp_path / "ufw"
    text.write_bytes(b"IPV6=yes\n# caf\xc3\xa9 \xff\n")
    assert file_text(str(text)) == "IPV6=yes\n# caf\u00e9 \ufffd\n"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    assert file_text(str(big), limit=10) is None
    assert file_text(str(tmp_path)) is None  # a directory
    assert file_text(str(tmp_path / "missing")) is None
    result = run({"contents": [str(text), str(tmp_path / "missing")]})
    assert result["contents"] == {str(text): "IPV6=yes\n# caf\u00e9 \ufffd\n", str(tmp_path / "missing"): None}


def test_setuid_scan_finds_the_bits_once_and_nothing_else(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import setuid_files
    bin_dir = tmp_path / "usr" / "bin"
    (bin_dir / "sub").mkdir(parents=True)
    for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("plain", 0o755), ("sub/deep", 0o4750)):
        (bin_dir / name).write_text("#!/bin/sh\n")
        os.chmod(bin_dir / name, mode)
    (tmp_path / "bin").symlink_to(bin_dir)  # merged /usr: the same files twice
    (bin_dir / "link").symlink_to(bin_dir / "suid")
    found = setuid_files([str(tmp_path / "bin"), str(bin_dir), str(tmp_path / "missing")])
    assert found == sorted(str(bin_dir / name) for name in ("suid", "sgid", "sub/deep"))


def test_a_link_is_described_with_its_target(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import describe
    zone = tmp_path / "Berlin"
    zone.write_text("TZif")
    link = tmp_path / "localtime"
    link.symlink_to(zone)
    entry = describe(str(link))
    assert entry["link"] == str(zone) and entry["exists"] and not entry["isdir"]
    assert describe(str(zone))["link"] == ""
    assert describe(str(tmp_path / "missing"))["link"] == ""


def test_grep_finds_the_files_with_a_matching_line(tmp_path):
    dropins = tmp_path / "sshd_config.d"
    dropins.mkdir()
    (dropins / "50-cloud-init.conf").write_text("PasswordAuthentication yes\n")
    (dropins / "60-commented.conf").write_text("# PasswordAuthentication yes\nPasswordAuthentication no\n")
    (dropins / "70-root.conf").write_text("  permitrootlogin PROHIBIT-PASSWORD\n")
    (dropins / "80-dir.conf").mkdir()  # a directory the glob matches: not a file to read
    (dropins / "90-other.txt").write_text("PasswordAuthentication yes\n")
    regex = (r"(?i)^\s*(PasswordAuthentication|PermitRootLogin)\s+(yes|without-password|prohibit-password)\b")
    glob_ = str(dropins / "*.conf")
    result = run({"grep": {glob_: regex, str(tmp_path / "none" / "*.conf"): regex}})
    assert result["grep"] == {glob_: [str(dropins / "50-cloud-init.conf"), str(dropins / "70-root.conf")],
                              str(tmp_path / "none" / "*.conf"): []}
    assert "yes" not in json.dumps(result["grep"])  # paths only, never the lines


def test_grep_refuses_an_expression_that_is_not_one(tmp_path):
    assert "is not a regular expression" in fail({"grep": {str(tmp_path / "*"): "(unclosed"}})


@pytest.mark.skipif(subprocess.run(["which", "ssh-keygen"], capture_output=True, check=False).returncode != 0,
                    reason="needs ssh-keygen")
def test_public_keys_are_derived_and_a_damaged_key_is_null(tmp_path):
    key = tmp_path / "offsite_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-C", "anvil@web-1", "-N", "", "-f", str(key)], check=True)
    encrypted = tmp_path / "encrypted_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(encrypted)], check=True)
    damaged = tmp_path / "damaged_key"
    damaged.write_text(key.read_text()[:120])
    damaged.chmod(0o600)
    paths = [str(key), str(encrypted), str(damaged), str(tmp_path / "missing_key")]
    result = run({"public_keys": paths})
    found = result["public_keys"]
    assert found[str(key)]["kind"] == "ssh" and found[str(key)]["mode"] == "0600"
    assert found[str(key)]["public_key"].split() == (tmp_path / "offsite_key.pub").read_text().split()
    assert found[str(encrypted)] is None and found[str(damaged)] is None and found[str(tmp_path / "missing_key")] is None
    # the private key is never in the answer, nor its SHA-1
    secret = "".join(key.read_text().splitlines()[1:-1])
    text = json.dumps(result)
    assert secret[:40] not in text and "sha1" not in json.dumps(found)


@pytest.mark.skipif(subprocess.run(["which", "age-keygen"], capture_output=True, check=False).returncode != 0,
                    reason="needs age-keygen")
def test_an_age_identity_gives_its_recipient(tmp_path):
    identity = tmp_path / "drill.key"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True).stdout.strip()
    result = run({"public_keys": [str(identity)]})
    assert result["public_keys"][str(identity)]["kind"] == "age"
    assert result["public_keys"][str(identity)]["public_key"] == recipient
    assert "AGE-SECRET-KEY" not in json.dumps(result)


def test_ufw_state_is_read_when_ufw_is_installed(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    ufw = fake / "ufw"
    ufw.write_text("#!/bin/sh\n[ \"$1 $2\" = 'status verbose' ] && { echo 'Status: active'; exit 0; }\n"
                   "[ \"$1 $2\" = 'show added' ] && { echo 'ufw allow 22/tcp'; exit 0; }\nexit 9\n")
    ufw.chmod(0o755)
    os.environ["PATH"], old = f"{fake}:{os.environ['PATH']}", os.environ["PATH"]
    try:
        result = run({"ufw": True})
        assert result["ufw"] == {"status": "Status: active\n", "added": "ufw allow 22/tcp\n"}
        assert run({"ufw": False})["ufw"] == {}
        ufw.write_text("#!/bin/sh\necho 'ERROR: You need to be root to run this script' >&2\nexit 1\n")
        assert "ufw status verbose failed (rc 1): ERROR: You need to be root" in fail({"ufw": True}, str(fake))
    finally:
        os.environ["PATH"] = old


class FakeEngine:
    """A Docker engine's API on a unix socket: answers from ``routes`` (path -> (status, body)), or
    accepts and never answers (``hang``)."""

    def __init__(self, path, routes=None, hang=False):
        import socket
        import threading
        self.routes, self.hang, self.requests = routes or {}, hang, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.held = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn = self.server.accept()[0]
            except OSError:
                return
            if self.hang:
                self.held.append(conn)
                continue
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            path = data.split(b" ", 2)[1].decode() if data else ""
            self.requests.append(path)
            status, body = self.routes.get(path.split("?", 1)[0], (404, {"message": "page not found"}))
            payload = json.dumps(body).encode()
            conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + payload)
            conn.close()

    def close(self):
        """Stop serving before the test ends. shutdown() wakes the thread blocked in accept() (close()
        alone leaves it blocked on the orphaned socket while its descriptor number goes to the next
        socket the process opens); the thread is gone before close() returns."""
        import socket
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the fake engine's thread did not stop"
        self.server.close()
        for conn in self.held:
            conn.close()


def test_docker_containers_and_images_from_the_engine_api(tmp_path):
    sock = tmp_path / "docker.sock"
    containers = [{"Names": ["/shop-web-blue"], "State": "running", "Labels": {"anvil.app": "shop"},
                   "Ports": [{"PrivatePort": 8000, "PublicPort": 18000, "Type": "tcp"}]}]
    images = [{"RepoTags": ["anvil-keep/shop:web-r3"], "Id": "sha256:abc"}]
    engine = FakeEngine(sock, {"/containers/json": (200, containers), "/images/json": (200, images)})
    try:
        result = run({"docker_containers": True, "docker_images": ["anvil-keep/shop"], "docker_socket": str(sock)})
        assert result["docker"] == {"containers": containers, "images": images}
        assert engine.requests[0] == "/containers/json?all=1"
        assert json.loads(__import__("urllib.parse").parse.unquote(engine.requests[1].split("filters=", 1)[1])) == \
            {"reference": ["anvil-keep/shop"]}
        # not asked, or no engine: nothing read
        assert run({"docker_socket": str(sock)})["docker"] == {}
        assert run({"docker_containers": True, "docker_socket": str(tmp_path / "none.sock")})["docker"] == {}
    finally:
        engine.close()


def test_a_docker_engine_that_errs_or_hangs_fails_the_probe_in_bounded_time(tmp_path):
    import time
    sock = tmp_path / "docker.sock"
    engine = FakeEngine(sock, {"/containers/json": (500, {"message": "daemon is shutting down"})})
    try:
        msg = fail({"docker_containers": True, "docker_socket": str(sock)})
        assert "answered GET /containers/json?all=1 with 500" in msg and "shutting down" in msg
    finally:
        engine.close()
    hung = tmp_path / "hung.sock"
    engine = FakeEngine(hung, hang=True)
    try:
        started = time.monotonic()
        msg = fail({"docker_containers": True, "docker_socket": str(hung), "docker_timeout": 2})
        assert time.monotonic() - started < 30
        assert "did not answer GET /containers/json?all=1" in msg and "within 2 s" in msg
    finally:
        engine.close()


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True, check=False).returncode != 0,
                    reason="needs openssl")
def test_certificates_are_loaded_as_a_ca_file_would_be(tmp_path):
    ca = tmp_path / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(ca), "-days", "2", "-subj", "/CN=test-ca"],
                   check=True, capture_output=True)
    key_only = tmp_path / "key-only.pem"
    key_only.write_text((tmp_path / "ca.key").read_text())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    paths = [str(ca), str(key_only), str(garbage), str(tmp_path / "missing.pem")]
    found = run({"certificates": paths})["certificates"]
    assert found[str(ca)] == {"ok": True, "count": 1, "error": ""}
    for path in paths[1:]:
        assert found[path]["ok"] is False and found[path]["error"], (path, found[path])
    assert "BEGIN" not in json.dumps(found)
