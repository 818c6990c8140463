#!/usr/bin/python
# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, in one module call, what the roles' input checks need to know about a host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_probe
short_description: Read what the anvil.hetzner roles check before changing a host
version_added: 0.2.0
description:
  - One read-only call that answers the questions every role's input check asks of the host
    before anything changes, instead of one command or C(stat) task per question.
  - Never changes anything; supports check mode and always runs in it.
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
options:
  paths:
    description:
      - Paths (shell globs allowed) to look for; each appears in RV(exists) as true when at least
        one file matches.
    type: list
    elements: str
    default: []
  sshd_ports:
    description: Read the ports sshd is configured to listen on (C(sshd -T)).
    type: bool
    default: false
  ssh:
    description:
      - Read what hardening sshd needs to know, returned in RV(ssh) (algorithms the installed
        OpenSSH supports, the RSA host key's size, short Diffie-Hellman moduli, socket activation).
    type: bool
    default: false
  moduli_min_bits:
    description: With O(ssh), count the moduli in C(/etc/ssh/moduli) shorter than this.
    type: int
    default: 3072
  calendars:
    description:
      - systemd calendar expressions (C(OnCalendar=) values) to check with C(systemd-analyze calendar).
      - Those it refuses are returned in RV(invalid_calendars).
    type: list
    elements: str
    default: []
  apt_sources:
    description: Read apt's sources (one-line C(.list) and deb822 C(.sources) files), returned in RV(apt_sources).
    type: bool
    default: false
  files:
    description: Paths to describe in RV(files) (type, mode, owner, group and the SHA-1 of regular files).
    type: list
    elements: str
    default: []
  setuid_dirs:
    description:
      - Directories to scan (at most three levels down, staying on their file system, not following
        links) for programs with the setuid or setgid bit, returned in RV(setuid_files).
    type: list
    elements: str
    default: []
  contents:
    description:
      - Text files to read whole, returned in RV(contents) (for a task that edits part of a file, such
        as a marked block or one line, to compare before it runs). Not for secrets; at most 256 KiB each.
    type: list
    elements: str
    default: []
  grep:
    description:
      - Shell globs, each with a regular expression (Python's, searched on each line); for each glob the
        regular files it matches that have such a line are returned in RV(grep). For a directory of
        drop-ins whose content decides whether a task has work (base's sshd drop-ins).
      - Not for secrets (the paths are returned, never the lines).
    type: dict
    default: {}
  public_keys:
    description:
      - Private key files (OpenSSH private keys, age identities) whose public key to derive on the host
        (C(ssh-keygen -y), C(age-keygen -y)), returned in RV(public_keys). Deriving it proves the key is
        whole; the private key itself is never returned.
    type: list
    elements: str
    default: []
  certificates:
    description:
      - PEM files that must hold CA certificates (a C(ca_file) a daemon will trust), each loaded as OpenSSL
        loads a CA file (Python's C(ssl)); returned in RV(certificates).
    type: list
    elements: str
    default: []
  caddy_version:
    description: Read the installed Caddy's own version (C(caddy version)), returned in RV(caddy_version).
    type: bool
    default: false
  ufw:
    description:
      - Read UFW's state (C(ufw status verbose)) and the rules added to it (C(ufw show added)), returned
        in RV(ufw), when UFW is installed.
    type: bool
    default: false
  docker_containers:
    description:
      - Read every container of the local Docker engine (running or not), as the engine's API lists them
        (C(GET /containers/json?all=1) on O(docker_socket)) with their names, labels, state, ports and
        image, never their environment; returned in RV(docker).
    type: bool
    default: false
  docker_images:
    description:
      - Image references (C(repo), C(repo:tag), wildcards as Docker takes them) whose local images to list
        as the engine's API does (C(GET /images/json)), returned in RV(docker).
    type: list
    elements: str
    default: []
  docker_timeout:
    description: Seconds the engine has to answer each request (a hung engine fails the probe, it does not hang it).
    type: int
    default: 30
  docker_socket:
    description: The engine's API socket.
    type: path
    default: /var/run/docker.sock
  services:
    description: systemd units whose enabled and active state to read, returned in RV(services).
    type: list
    elements: str
    default: []
  login_defs:
    description: Read the settings of C(/etc/login.defs), returned in RV(login_defs).
    type: bool
    default: false
  groups:
    description: Group names to look up; the ones that do not exist are returned in RV(missing_groups).
    type: list
    elements: str
    default: []
  packages:
    description: Package names whose installed state to read from dpkg.
    type: list
    elements: str
    default: []
  users:
    description:
      - Account names to look up in the passwd and group databases (Python's C(pwd) and C(grp)),
        returned in RV(users); the ones that do not exist are also listed in RV(missing_users).
    type: list
    elements: str
    default: []
  listening_ports:
    description:
      - Read every listening TCP socket and every unconnected (receiving) UDP socket, with the process
        that holds it, returned in RV(listening).
      - Read from C(/proc/net/tcp), C(/proc/net/tcp6), C(/proc/net/udp), C(/proc/net/udp6) and the socket
        inodes of C(/proc/*/fd); no C(ss) or C(netstat) is needed. Sockets of processes the module may not
        read (run it with C(become)) are listed in RV(listening) without their process.
    type: bool
    default: false
extends_documentation_fragment:
  - anvil.hetzner.read_only
notes:
  - Used by the input checks of the roles of this collection (C(tasks/assert.yml)).
"""

EXAMPLES = r"""
- name: Read the host before any change
  anvil.hetzner.host_probe:
    paths: [/usr/bin/docker, /var/log/caddy/*.log]
    sshd_ports: true
    calendars: [daily, "Mon *-*-* 04:00"]
  register: probe

- name: Who listens where, and who the service user is
  anvil.hetzner.host_probe:
    listening_ports: true
    users: [prometheus]
  become: true
  register: probe
"""

RETURN = r"""
exists:
  description: For every path in O(paths), whether it (or a match of the glob) exists.
  returned: always
  type: dict
  sample: {"/usr/bin/docker": true}
sshd_ports:
  description: Ports sshd is configured to listen on; empty when sshd is missing or its config does not parse.
  returned: always
  type: list
  elements: int
  sample: [22]
ssh:
  description: With O(ssh), what the installed OpenSSH supports and the state of its keys.
  returned: always
  type: dict
  contains:
    algorithms:
      description: Output of C(ssh -Q kex|cipher|mac|key), one list per kind (keys C(kex), C(cipher), C(mac), C(key)).
      type: dict
    rsa_host_key_bits:
      description: Size of C(/etc/ssh/ssh_host_rsa_key), 0 when there is none.
      type: int
    weak_moduli:
      description: How many groups in C(/etc/ssh/moduli) are shorter than O(moduli_min_bits).
      type: int
    socket_enabled:
      description: Whether C(ssh.socket) is enabled (socket activation owns the SSH port).
      type: bool
invalid_calendars:
  description: The values of O(calendars) that C(systemd-analyze calendar) refuses.
  returned: always
  type: list
  elements: str
  sample: ["every tuesday-ish"]
calendars_checked:
  description: Whether C(systemd-analyze) was there to check O(calendars).
  returned: always
  type: bool
apt_sources:
  description: With O(apt_sources), every enabled C(deb) entry of apt's sources.
  returned: always
  type: list
  elements: dict
  sample: [{"uris": ["http://deb.debian.org/debian"], "suites": ["bookworm"], "components": ["main"],
            "file": "/etc/apt/sources.list"}]
files:
  description:
    - For every path of O(files), what is there (for a symbolic link, what it points to, and the link's
      own target in C(link); empty for anything else).
  returned: always
  type: dict
  sample: {"/etc/modprobe.d": {"exists": true, "isdir": true, "mode": "0755", "owner": "root", "group": "root", "sha1": "",
                               "link": ""},
           "/etc/localtime": {"exists": true, "isdir": false, "mode": "0644", "owner": "root", "group": "root",
                              "sha1": "...", "link": "/usr/share/zoneinfo/Etc/UTC"}}
setuid_files:
  description: The regular files under O(setuid_dirs) with the setuid or setgid bit, by their real path, sorted.
  returned: always
  type: list
  elements: str
  sample: ["/usr/bin/passwd", "/usr/bin/sudo"]
contents:
  description: For every path of O(contents), its text (UTF-8, undecodable bytes replaced); null when it is
    missing, not a regular file or larger than 256 KiB.
  returned: always
  type: dict
  sample: {"/etc/default/ufw": "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\n"}
grep:
  description: For every glob of O(grep), the files it matches with a line its expression finds, sorted.
  returned: always
  type: dict
  sample: {"/etc/ssh/sshd_config.d/*.conf": ["/etc/ssh/sshd_config.d/50-cloud-init.conf"]}
public_keys:
  description:
    - For every path of O(public_keys), its public key (C(ssh-ed25519 AAAA... comment), C(age1...)) and its
      kind (C(ssh), C(age)); null when the file is missing, holds no key these tools read (damaged,
      encrypted) or the tool is not installed. With the key file's C(mode), C(owner) and C(group).
  returned: always
  type: dict
  sample: {"/etc/anvil/offsite_key": {"kind": "ssh", "public_key": "ssh-ed25519 AAAAC3Nza... anvil@web-1",
                                       "mode": "0600", "owner": "root", "group": "root"}}
certificates:
  description:
    - For every path of O(certificates), C(ok) (it loads as a CA file and holds at least one certificate),
      C(count) (how many CA certificates) and C(error) (why not).
  returned: always
  type: dict
  sample: {"/usr/local/share/ca.crt": {"ok": true, "count": 1, "error": ""}}
caddy_version:
  description: With O(caddy_version), what C(caddy version) prints; empty when Caddy is not installed.
  returned: always
  type: str
  sample: "v2.6.2 h1:wKoFIxpmOJLGl3QXoo6PNbYvGW4xLEgo32GPBEjWL8o="
ufw:
  description:
    - With O(ufw), the output of C(ufw status verbose) (C(status)) and of C(ufw show added) (C(added));
      empty when UFW is not installed (or O(ufw) is false).
  returned: always
  type: dict
  sample: {"status": "Status: active\nLogging: on (low)\n...", "added": "Added user rules (see 'ufw status' for running firewall):\nufw allow 22/tcp"}
docker:
  description:
    - With O(docker_containers) or O(docker_images), C(containers) and C(images) as the engine's API lists
      them; empty when Docker's socket is not there.
  returned: always
  type: dict
  sample: {"containers": [{"Names": ["/shop-web-blue"], "State": "running", "Labels": {"anvil.app": "shop"}}], "images": []}
services:
  description: For every unit of O(services), C(enabled) (the unit file state is enabled) and C(active).
  returned: always
  type: dict
  sample: {"cron": {"enabled": true, "active": true}}
login_defs:
  description: With O(login_defs), every C(KEY value) setting of C(/etc/login.defs).
  returned: always
  type: dict
  sample: {"UMASK": "027", "PASS_MAX_DAYS": "99999"}
missing_groups:
  description: The groups of O(groups) that do not exist.
  returned: always
  type: list
  elements: str
installed_packages:
  description: The packages of O(packages) that dpkg reports as installed.
  returned: always
  type: list
  elements: str
missing_users:
  description: The accounts of O(users) that do not exist.
  returned: always
  type: list
  elements: str
users:
  description:
    - For every account of O(users), whether it exists, its uid, its primary gid and the names of every
      group it belongs to (its primary group and the groups that list it as a member).
    - C(uid) and C(gid) are null and C(groups) is empty for an account that does not exist.
    - C(shell) is its login shell and C(max_days) its maximum password age from C(/etc/shadow) (null
      when the field is empty or the file is not readable).
  returned: always
  type: dict
  sample: {"prometheus": {"exists": true, "uid": 108, "gid": 115, "groups": ["prometheus"],
                          "shell": "/usr/sbin/nologin", "max_days": 99999},
           "nobody-x": {"exists": false, "uid": null, "gid": null, "groups": [], "shell": "", "max_days": null}}
listening:
  description:
    - With O(listening_ports), every listening TCP socket and unconnected UDP socket, sorted by port.
    - C(address) is the local address (C(0.0.0.0) or C(::) for every address); C(pid), C(process) (the
      kernel's C(comm), at most 15 characters), C(exe) (the executable's path) and C(unit) (the systemd
      unit whose cgroup holds the process) describe the lowest process id that holds the socket;
      C(pid) is null and the others empty when no readable process holds it.
  returned: always
  type: list
  elements: dict
  sample: [{"port": 22, "proto": "tcp", "address": "0.0.0.0", "pid": 612, "process": "sshd",
            "exe": "/usr/sbin/sshd", "unit": "ssh.service"}]
"""

import glob
import grp
import hashlib
import http.client
import json
import os
import pwd
import re
import socket
import ssl
import stat
import urllib.parse

from ansible.module_utils.basic import AnsibleModule


def sshd_ports(module: AnsibleModule) -> list[int]:
    sshd = module.get_bin_path("sshd", opt_dirs=["/usr/sbin"])
    if not sshd:
        return []
    rc, out, _err = module.run_command([sshd, "-T"])
    if rc != 0:
        return []
    ports = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "port" and fields[1].isdigit():
            ports.append(int(fields[1]))
    return sorted(set(ports))


def weak_moduli(path: str, min_bits: int) -> int:
    """Groups in an OpenSSH moduli file whose size (field 5, bits - 1) is below min_bits."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) >= 7 and not fields[0].startswith("#") and fields[4].isdigit() and int(fields[4]) + 1 < min_bits:
            count += 1
    return count


def ssh_state(module: AnsibleModule, min_bits: int) -> dict:
    state: dict = {"algorithms": {}, "rsa_host_key_bits": 0, "weak_moduli": 0, "socket_enabled": False}
    ssh = module.get_bin_path("ssh")
    for kind in ("kex", "cipher", "mac", "key"):
        out = module.run_command([ssh, "-Q", kind])[1] if ssh else ""
        state["algorithms"][kind] = [line.strip() for line in out.splitlines() if line.strip()]
    keygen = module.get_bin_path("ssh-keygen")
    if keygen and os.path.exists("/etc/ssh/ssh_host_rsa_key.pub"):
        rc, out, _err = module.run_command([keygen, "-lf", "/etc/ssh/ssh_host_rsa_key.pub"])
        if rc == 0 and out.split() and out.split()[0].isdigit():
            state["rsa_host_key_bits"] = int(out.split()[0])
    state["weak_moduli"] = weak_moduli("/etc/ssh/moduli", min_bits)
    systemctl = module.get_bin_path("systemctl")
    if systemctl:
        out = module.run_command([systemctl, "is-enabled", "ssh.socket"])[1].strip()
        state["socket_enabled"] = out in ("enabled", "enabled-runtime")
    return state


def parse_one_line(text: str, name: str) -> list[dict]:
    """Entries of a one-line sources file: ``deb [options] uri suite component...``."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            rest = rest.split("]", 1)[1].strip() if "]" in rest else ""
        fields = rest.split()
        if len(fields) >= 2:
            entries.append({"uris": [fields[0]], "suites": [fields[1]], "components": fields[2:], "file": name})
    return entries


def parse_deb822(text: str, name: str) -> list[dict]:
    """Entries of a deb822 sources file (stanzas separated by blank lines)."""
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        entries.append({"uris": fields.get("uris", "").split(), "suites": fields.get("suites", "").split(),
                        "components": fields.get("components", "").split(), "file": name})
    return entries


def apt_sources(root: str = "/etc/apt") -> list[dict]:
    entries = []
    paths = [os.path.join(root, "sources.list")] + sorted(glob.glob(os.path.join(root, "sources.list.d", "*")))
    for path in paths:
        if not (path.endswith(".list") or path.endswith(".sources")) or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        entries += parse_deb822(text, path) if path.endswith(".sources") else parse_one_line(text, path)
    return entries


def invalid_calendars(module: AnsibleModule, values: list[str]) -> tuple[list[str], bool]:
    analyze = module.get_bin_path("systemd-analyze")
    if not analyze:
        return [], False
    bad = []
    for value in values:
        rc, _out, _err = module.run_command([analyze, "calendar", "--", value])
        if rc != 0:
            bad.append(value)
    return bad, True


def installed_packages(module: AnsibleModule, names: list[str]) -> list[str]:
    if not names:
        return []
    dpkg_query = module.get_bin_path("dpkg-query")
    if not dpkg_query:
        return []
    # dpkg-query exits 1 when some names are unknown; the others are still listed.
    _rc, out, _err = module.run_command([dpkg_query, "-W", "-f", "${db:Status-Abbrev} ${Package}\n"] + names)
    found = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "ii":
            found.append(fields[1])
    return sorted(found)


def home_path(path: str) -> str:
    """``~user/rest`` as the path under that user's home (the result keeps the key as asked)."""
    if not path.startswith("~"):
        return path
    user, _sep, rest = path[1:].partition("/")
    try:
        home = pwd.getpwnam(user).pw_dir if user else pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return path  # no such user: the path does not exist
    return os.path.join(home, rest)


def describe(path: str) -> dict:
    """Type, mode, owner, group and (for a regular file) SHA-1 of a path (a link: of what it points
    to, and the link's target in ``link``); exists false when absent."""
    try:
        info = os.stat(home_path(path))
    except OSError:
        return {"exists": False, "isdir": False, "mode": "", "owner": "", "group": "", "sha1": "", "link": ""}
    link = os.readlink(home_path(path)) if os.path.islink(home_path(path)) else ""
    digest = ""
    if stat.S_ISREG(info.st_mode):
        sha1 = hashlib.sha1()
        with open(home_path(path), "rb") as handle:
            for block in iter(lambda: handle.read(65536), b""):
                sha1.update(block)
        digest = sha1.hexdigest()
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return {"exists": True, "isdir": stat.S_ISDIR(info.st_mode), "mode": "%04o" % stat.S_IMODE(info.st_mode),
            "owner": owner, "group": group, "sha1": digest, "link": link}


def services(module: AnsibleModule, names: list[str]) -> dict:
    out = {name: {"enabled": False, "active": False} for name in names}
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not names:
        return out
    rc, text, _err = module.run_command([systemctl, "show", "--property=Id,UnitFileState,ActiveState", "--"] + names)
    if rc != 0:
        return out
    # one block per unit, in the order asked, separated by blank lines
    for name, block in zip(names, text.strip().split("\n\n")):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        out[name] = {"enabled": fields.get("UnitFileState") in ("enabled", "enabled-runtime"),
                     "active": fields.get("ActiveState") == "active"}
    return out


def login_defs(path: str = "/etc/login.defs") -> dict:
    settings = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return settings
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#"):
            settings[fields[0]] = " ".join(fields[1:])
    return settings


def missing(names: list[str], lookup) -> list[str]:
    """The names that ``lookup`` (pwd.getpwnam, grp.getgrnam) does not know."""
    absent = []
    for name in names:
        try:
            lookup(name)
        except KeyError:
            absent.append(name)
    return absent


# /proc/net/* socket states (include/net/tcp_states.h): a listening TCP socket, an unconnected UDP one
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def proc_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (/proc/net/tcp: 32-bit words in host byte order, hex port) as ('127.0.0.1', 8080)."""
    address, _sep, port = text.partition(":")
    raw = bytes.fromhex(address)
    # every 32-bit word is written in the host's byte order (little-endian on amd64 and arm64)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if socket.htonl(1) != 1 else raw
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def proc_sockets(proc: str = "/proc") -> list[dict]:
    """Listening TCP and unconnected UDP sockets of /proc/net/{tcp,tcp6,udp,udp6}, with their inode."""
    found = []
    for table, proto, wanted in (("tcp", "tcp", TCP_LISTEN), ("tcp6", "tcp", TCP_LISTEN),
                                 ("udp", "udp", UDP_UNCONNECTED), ("udp6", "udp", UDP_UNCONNECTED)):
        try:
            with open(os.path.join(proc, "net", table), encoding="ascii") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue  # no IPv6 on this host, or no such table
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != wanted:
                continue
            address, port = proc_address(fields[1])
            found.append({"port": port, "proto": proto, "address": address, "inode": fields[9]})
    return found


def socket_holders(inodes: set[str], proc: str = "/proc") -> dict[str, int]:
    """The lowest pid whose open files include each socket inode (processes it may not read are skipped)."""
    holders: dict[str, int] = {}
    pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    for pid in pids:
        if len(holders) == len(inodes):
            break
        fd_dir = os.path.join(proc, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holders.setdefault(target[8:-1], pid)
    return holders


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def process_unit(pid: int, proc: str = "/proc") -> str:
    """The systemd unit (service, socket or scope) whose cgroup holds a process, '' when none."""
    for line in read_text(os.path.join(proc, str(pid), "cgroup")).splitlines():
        hierarchy, _sep, path = line.partition(":")[2].partition(":")
        if hierarchy not in ("", "name=systemd"):
            continue
        units = [part for part in path.split("/") if part.endswith((".service", ".socket", ".scope"))]
        if units:
            return units[-1]
    return ""


def listening(proc: str = "/proc") -> list[dict]:
    """Every listening socket with the process that holds it (see RETURN ``listening``)."""
    sockets = proc_sockets(proc)
    holders = socket_holders({entry["inode"] for entry in sockets}, proc) if sockets else {}
    result = []
    for entry in sockets:
        pid = holders.get(entry.pop("inode"))
        if pid is None:
            entry.update(pid=None, process="", exe="", unit="")
        else:
            try:
                exe = os.readlink(os.path.join(proc, str(pid), "exe"))
            except OSError:
                exe = ""
            entry.update(pid=pid, process=read_text(os.path.join(proc, str(pid), "comm")).strip(), exe=exe,
                         unit=process_unit(pid, proc))
        result.append(entry)
    return sorted(result, key=lambda item: (item["port"], item["proto"], item["address"]))


CONTENT_LIMIT = 256 * 1024


def file_text(path: str, limit: int = CONTENT_LIMIT) -> str | None:
    """A regular file's text, or None when it is missing, not a regular file or over ``limit`` bytes."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or os.path.getsize(path) > limit:
            return None
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def grep_files(module: AnsibleModule, patterns: dict) -> dict:
    """For every glob of ``patterns``, its regular files with a line its expression finds (see O(grep))."""
    found = {}
    for pattern, expression in patterns.items():
        try:
            regex = re.compile(str(expression))
        except re.error as exc:
            module.fail_json(msg=f"anvil.hetzner.host_probe: grep: {expression!r} for {pattern} is not a regular expression: {exc}")
        matches = []
        for path in sorted(glob.glob(pattern)):
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
                with open(path, "rb") as handle:
                    if any(regex.search(line.decode("utf-8", errors="replace")) for line in handle):
                        matches.append(path)
            except OSError:
                continue
        found[pattern] = matches
    return found


def public_key(module: AnsibleModule, path: str) -> dict | None:
    """The public key of a private key file (see O(public_keys)), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if b"AGE-SECRET-KEY-" in head:
        kind, tool, argv = "age", "age-keygen", ["-y", path]
    elif head.startswith(b"-----BEGIN"):
        # -P '': an encrypted key fails instead of asking for its passphrase
        kind, tool, argv = "ssh", "ssh-keygen", ["-y", "-P", "", "-f", path]
    else:
        return None
    binary = module.get_bin_path(tool)
    if not binary:
        return None
    rc, out, _err = module.run_command([binary] + argv)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if rc != 0 or len(lines) != 1:
        return None
    # the key file's own mode and owner (describe() would add its SHA-1: not for a secret)
    found = describe(path)
    return {"kind": kind, "public_key": lines[0], "mode": found["mode"], "owner": found["owner"], "group": found["group"]}


def certificate_file(path: str) -> dict:
    """Whether a PEM file loads as a CA file with at least one certificate (see O(certificates))."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return {"ok": False, "count": 0, "error": str(exc) or exc.__class__.__name__}
    count = len(context.get_ca_certs())
    return {"ok": count > 0, "count": count, "error": "" if count else "no CA certificate in it"}


def caddy_version(module: AnsibleModule) -> str:
    """What ``caddy version`` prints (see O(caddy_version)); "" without Caddy."""
    binary = module.get_bin_path("caddy")
    if not binary:
        return ""
    rc, out, err = module.run_command([binary, "version"])
    if rc != 0:
        module.fail_json(msg=f"anvil.hetzner.host_probe: caddy version failed (rc {rc}): {err.strip()}")
    return out.strip()


def ufw_state(module: AnsibleModule) -> dict:
    """``ufw status verbose`` and ``ufw show added`` (see O(ufw)); {} without UFW."""
    binary = module.get_bin_path("ufw", opt_dirs=["/usr/sbin", "/sbin"])
    if not binary:
        return {}
    rc, status, err = module.run_command([binary, "status", "verbose"])
    if rc != 0:
        module.fail_json(msg=f"anvil.hetzner.host_probe: ufw status verbose failed (rc {rc}): {err.strip()}")
    rc, added, err = module.run_command([binary, "show", "added"])
    if rc != 0:
        module.fail_json(msg=f"anvil.hetzner.host_probe: ufw show added failed (rc {rc}): {err.strip()}")
    return {"status": status, "added": added}


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the Docker engine's API), every read bounded by ``timeout``."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def docker_get(module: AnsibleModule, path: str, timeout: float, socket_path: str):
    """One GET of the engine's API, its JSON; a failure fails the module naming the request."""
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        module.fail_json(msg=f"anvil.hetzner.host_probe: the Docker engine did not answer GET {path} "
                             f"on {socket_path} within {timeout:g} s: {exc}")
    finally:
        connection.close()
    if response.status != 200:
        module.fail_json(msg=f"anvil.hetzner.host_probe: the Docker engine answered GET {path} with "
                             f"{response.status}: {body[:300].decode('utf-8', errors='replace')}")
    return json.loads(body)


def docker_state(module: AnsibleModule, containers: bool, images: list, timeout: float, socket_path: str) -> dict:
    """The engine's containers and the images of ``images`` (see O(docker_containers)); {} without Docker."""
    if not (containers or images) or not os.path.exists(socket_path):
        return {}
    found = {"containers": docker_get(module, "/containers/json?all=1", timeout, socket_path) if containers else [],
             "images": []}
    if images:
        query = urllib.parse.quote(json.dumps({"reference": list(images)}))
        found["images"] = docker_get(module, f"/images/json?filters={query}", timeout, socket_path)
    return found


def setuid_files(dirs: list[str], depth: int = 3) -> list[str]:
    """Regular files with the setuid or setgid bit under ``dirs`` (``depth`` levels down, one file
    system each, links not followed), by real path: /bin and /usr/bin of a merged-/usr system count
    once. Programs live near the top (/usr/lib/openssh/ssh-keysign); the depth bounds the time on a
    host with a large /usr/lib."""
    found = set()
    for top in dirs:
        try:
            device = os.stat(top).st_dev
        except OSError:
            continue
        base = top.rstrip("/").count("/")
        for root, subdirs, files in os.walk(top):
            below = root.rstrip("/").count("/") - base
            subdirs[:] = [d for d in subdirs if below < depth - 1 and _same_device(os.path.join(root, d), device)]
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    found.add(os.path.realpath(path))
    return sorted(found)


def _same_device(path: str, device: int) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return not stat.S_ISLNK(info.st_mode) and info.st_dev == device


def shadow_max_days(path: str = "/etc/shadow") -> dict:
    """Every account's maximum password age (field 5 of the shadow file; None when empty)."""
    ages = {}
    for line in read_text(path).splitlines():
        fields = line.split(":")
        if len(fields) >= 5:
            ages[fields[0]] = int(fields[4]) if fields[4].isdigit() else None
    return ages


def accounts(names: list[str], shadow: str = "/etc/shadow") -> dict:
    """uid, primary gid, every group name, shell and maximum password age of each account (see
    RETURN ``users``)."""
    result = {}
    all_groups = None
    ages = shadow_max_days(shadow) if names else {}
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            result[name] = {"exists": False, "uid": None, "gid": None, "groups": [], "shell": "", "max_days": None}
            continue
        if all_groups is None:
            all_groups = grp.getgrall()
        groups = {group.gr_name for group in all_groups if name in group.gr_mem}
        try:
            groups.add(grp.getgrgid(entry.pw_gid).gr_name)
        except KeyError:
            groups.add(str(entry.pw_gid))  # a primary gid with no group entry
        result[name] = {"exists": True, "uid": entry.pw_uid, "gid": entry.pw_gid, "groups": sorted(groups),
                        "shell": entry.pw_shell, "max_days": ages.get(name)}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "default": []},
            "sshd_ports": {"type": "bool", "default": False},
            "ssh": {"type": "bool", "default": False},
            "moduli_min_bits": {"type": "int", "default": 3072},
            "calendars": {"type": "list", "elements": "str", "default": []},
            "apt_sources": {"type": "bool", "default": False},
            "files": {"type": "list", "elements": "str", "default": []},
            "contents": {"type": "list", "elements": "str", "default": []},
            "setuid_dirs": {"type": "list", "elements": "str", "default": []},
            "grep": {"type": "dict", "default": {}},
            "public_keys": {"type": "list", "elements": "str", "default": []},
            "ufw": {"type": "bool", "default": False},
            "caddy_version": {"type": "bool", "default": False},
            "certificates": {"type": "list", "elements": "str", "default": []},
            "docker_containers": {"type": "bool", "default": False},
            "docker_images": {"type": "list", "elements": "str", "default": []},
            "docker_timeout": {"type": "int", "default": 30},
            "docker_socket": {"type": "path", "default": "/var/run/docker.sock"},
            "services": {"type": "list", "elements": "str", "default": []},
            "login_defs": {"type": "bool", "default": False},
            "groups": {"type": "list", "elements": "str", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "users": {"type": "list", "elements": "str", "default": []},
            "listening_ports": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    bad_calendars, checked = invalid_calendars(module, params["calendars"])
    module.exit_json(
        changed=False,
        exists={path: bool(glob.glob(path)) for path in params["paths"]},
        sshd_ports=sshd_ports(module) if params["sshd_ports"] else [],
        ssh=ssh_state(module, params["moduli_min_bits"]) if params["ssh"] else {},
        invalid_calendars=bad_calendars,
        calendars_checked=checked,
        apt_sources=apt_sources() if params["apt_sources"] else [],
        installed_packages=installed_packages(module, params["packages"]),
        missing_users=missing(params["users"], pwd.getpwnam),
        users=accounts(params["users"]),
        listening=listening() if params["listening_ports"] else [],
        files={path: describe(path) for path in params["files"]},
        contents={path: file_text(path) for path in params["contents"]},
        setuid_files=setuid_files(params["setuid_dirs"]),
        grep=grep_files(module, params["grep"]),
        public_keys={path: public_key(module, path) for path in params["public_keys"]},
        ufw=ufw_state(module) if params["ufw"] else {},
        caddy_version=caddy_version(module) if params["caddy_version"] else "",
        certificates={path: certificate_file(path) for path in params["certificates"]},
        docker=docker_state(module, params["docker_containers"], params["docker_images"], params["docker_timeout"],
                            params["docker_socket"]),
        services=services(module, params["services"]),
        login_defs=login_defs() if params["login_defs"] else {},
        missing_groups=missing(params["groups"], grp.getgrnam),
    )


if __name__ == "__main__":
    main()
