# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""auditd rules: the base role's rule set (built on the controller) and the check of a rules file.

The check runs twice: on the controller for the operator's extra rules (the role's input check,
before any change), and on the host as the ``validate`` command of the rules file, where it also
holds every syscall name against the host's own syscall table (``ausyscall --dump``), so a file
auditctl would reject never replaces the one in place. A container cannot load audit rules; the
check is what it can do there.

Run on the host as ``python3 audit_rules.py FILE`` (exit 0: the file is valid; 1: it is not, one
line per problem on standard error). Standard library only.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

ACTIONS = ("always", "never")
LISTS = ("exit", "task", "user", "exclude", "filesystem", "io_uring")
# auditctl's -F fields (auditctl(8), audit 3.0)
FIELDS = frozenset((
    "a0", "a1", "a2", "a3", "arch", "auid", "loginuid", "devmajor", "devminor", "dir", "egid", "euid", "exe",
    "exit", "fsgid", "fsuid", "filetype", "gid", "inode", "key", "msgtype", "obj_uid", "obj_gid", "obj_user",
    "obj_role", "obj_type", "obj_lev_low", "obj_lev_high", "path", "perm", "pers", "pid", "ppid", "saddr_fam",
    "sessionid", "subj_user", "subj_role", "subj_type", "subj_sen", "subj_clr", "sgid", "success", "suid", "uid",
    "fstype", "field_compare"))
OPERATORS = ("!=", ">=", "<=", "&=", "=", ">", "<", "&")
KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,31}$")
PERMS = re.compile(r"^[rwxa]{1,4}$")
SYSCALL = re.compile(r"^[a-z0-9_]+$")
NUMBER = re.compile(r"^[0-9]+$")
UNSET = "4294967295"  # auid of a process no login started (daemons)

# The syscalls each group of the role's rules watches, per architecture of the host
# (ansible_facts['architecture']) and audit arch (b64, b32). aarch64 has no open/creat and no b32
# table in these rules; a name missing in the host's table is refused by the host's check.
SYSCALLS = {
    "x86_64": {
        "b64": {"time": ["adjtimex", "settimeofday", "clock_settime"],
                "modules": ["init_module", "finit_module", "delete_module"],
                "mounts": ["mount", "umount2"],
                "access": ["open", "openat", "open_by_handle_at", "creat", "truncate", "ftruncate"]},
        "b32": {"time": ["adjtimex", "settimeofday", "clock_settime", "stime"],
                "modules": ["init_module", "finit_module", "delete_module"],
                "mounts": ["mount", "umount", "umount2"],
                "access": ["open", "openat", "open_by_handle_at", "creat", "truncate", "ftruncate"]},
    },
    "aarch64": {
        "b64": {"time": ["adjtimex", "settimeofday", "clock_settime"],
                "modules": ["init_module", "finit_module", "delete_module"],
                "mounts": ["mount", "umount2"],
                "access": ["openat", "open_by_handle_at", "truncate", "ftruncate"]},
    },
}

# What reviewers look for first, watched for writes and attribute changes (key: what it is).
WATCHES = (
    ("identity", ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/security/opasswd")),
    ("sudoers", ("/etc/sudoers", "/etc/sudoers.d")),
    ("sshd", ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d")),
    ("time-change", ("/etc/localtime",)),
    ("logins", ("/etc/login.defs", "/etc/securetty", "/etc/pam.d", "/etc/security/limits.d", "/etc/profile.d")),
    ("kernel", ("/etc/sysctl.conf", "/etc/sysctl.d", "/etc/modprobe.d")),
    ("cron", ("/etc/crontab", "/etc/cron.d")),
    ("audit-config", ("/etc/audit",)),
)
MODULE_TOOLS = ("/usr/sbin/insmod", "/usr/sbin/rmmod", "/usr/sbin/modprobe", "/usr/bin/kmod")


def _field_error(text: str) -> str | None:
    for op in OPERATORS:
        name, sep, value = text.partition(op)
        if sep:
            break
    else:
        return f"-F {text!r} is not FIELD=VALUE (operators {', '.join(OPERATORS)})"
    if name not in FIELDS:
        return f"-F {name!r} is not an audit rule field (auditctl(8): {', '.join(sorted(FIELDS)[:6])}...)"
    if not value:
        return f"-F {name} has no value"
    if name == "arch" and value not in ("b32", "b64", "x86_64", "i386", "aarch64", "armeb"):
        return f"-F arch={value} is not b32 or b64"
    if name == "perm" and not PERMS.match(value):
        return f"-F perm={value} is not one or more of r, w, x, a"
    if name == "key" and not KEY.match(value):
        return f"-F key={value!r} is not a key (letters, digits, _ . : -; at most 31)"
    return None


def rule_error(line: str, syscalls: dict[str, set[str]] | None = None) -> str | None:
    """Why one line of a rules file would be refused by auditctl, or None. ``syscalls`` maps an
    audit arch (b64, b32) to the host's syscall names; without it, names are checked by form only."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return f"cannot be split into words ({exc})"
    if any(ord(ch) < 32 for ch in text):
        return "holds a control character"
    option = words[0]
    if option == "-D" and len(words) == 1:
        return None
    if option in ("-b", "-r", "--backlog_wait_time") and len(words) == 2 and NUMBER.match(words[1]):
        return None
    if option in ("-f", "-e") and len(words) == 2 and words[1] in ("0", "1", "2"):
        return None
    if option in ("--loginuid-immutable", "-i", "-c") and len(words) == 1:
        return None
    if option in ("-w", "-W"):
        return _watch_error(words)
    if option in ("-a", "-A", "-d"):
        return _syscall_rule_error(words, syscalls)
    return f"{option!r} is not an auditctl option this check knows (-w, -a, -A, -D, -b, -f, -e, -r, --backlog_wait_time)"


def _watch_error(words: list[str]) -> str | None:
    if len(words) < 2 or not words[1].startswith("/"):
        return f"{words[0]} needs an absolute path"
    rest = words[2:]
    while rest:
        if len(rest) < 2:
            return f"{rest[0]} needs a value"
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "-p":
            if not PERMS.match(value):
                return f"-p {value} is not one or more of r, w, x, a"
        elif flag == "-k":
            if not KEY.match(value):
                return f"-k {value!r} is not a key (letters, digits, _ . : -; at most 31)"
        else:
            return f"{flag!r} does not go with -w (only -p and -k)"
    return None


def _syscall_rule_error(words: list[str], syscalls: dict[str, set[str]] | None) -> str | None:
    if len(words) < 2:
        return f"{words[0]} needs ACTION,LIST such as always,exit"
    parts = words[1].split(",")
    if len(parts) != 2 or not ({parts[0], parts[1]} & set(ACTIONS)) or not ({parts[0], parts[1]} & set(LISTS)):
        return f"{words[0]} {words[1]!r} is not ACTION,LIST ({'/'.join(ACTIONS)} with {'/'.join(LISTS)})"
    rest, arch, names = words[2:], "b64", []
    while rest:
        if len(rest) < 2:
            return f"{rest[0]} needs a value"
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "-F":
            error = _field_error(value)
            if error:
                return error
            if value.startswith("arch="):
                arch = {"x86_64": "b64", "aarch64": "b64", "i386": "b32", "armeb": "b32"}.get(value[5:], value[5:])
        elif flag == "-S":
            for name in value.split(","):
                if name == "all" or NUMBER.match(name):
                    continue
                if not SYSCALL.match(name):
                    return f"-S {name!r} is not a syscall name"
                names.append(name)
        elif flag == "-k":
            if not KEY.match(value):
                return f"-k {value!r} is not a key (letters, digits, _ . : -; at most 31)"
        elif flag == "-C":
            continue
        else:
            return f"{flag!r} does not go with -a (only -F, -S, -C and -k)"
    if syscalls is not None and names:
        table = syscalls.get(arch)
        if table is None:
            return f"-F arch={arch}: this host has no {arch} syscall table (ausyscall, from auditd)"
        unknown = [name for name in names if name not in table]
        if unknown:
            return f"-S {','.join(unknown)}: not a syscall of this host's {arch} table"
    return None


def file_errors(text: str, syscalls: dict[str, set[str]] | None = None) -> list[str]:
    """Every line of a rules file auditctl would refuse, as 'line N: reason'."""
    errors = []
    for number, line in enumerate(text.splitlines(), 1):
        reason = rule_error(line, syscalls)
        if reason:
            errors.append(f"line {number}: {reason}: {line.strip()[:120]}")
    return errors


def base_rules(architecture: str, privileged: list[str], extra: list[str] | None = None) -> str:
    """The base role's rule set for a host of ``architecture`` whose setuid/setgid programs are
    ``privileged`` (host_probe's scan), then the operator's ``extra`` lines."""
    tables = SYSCALLS.get(architecture, SYSCALLS["x86_64" if architecture not in ("arm64",) else "aarch64"])
    login = f"-F auid>=1000 -F auid!={UNSET}"
    lines = ["## Watched files: writes and attribute changes"]
    for key, paths in WATCHES:
        lines += [f"-w {path} -p wa -k {key}" for path in paths]
    lines += ["", "## Kernel modules: the tools and the syscalls"]
    lines += [f"-w {tool} -p x -k modules" for tool in MODULE_TOOLS]
    for arch, groups in sorted(tables.items(), reverse=True):
        lines += ["", f"## Syscalls ({arch})",
                  f"-a always,exit -F arch={arch} -S {','.join(groups['time'])} -k time-change",
                  f"-a always,exit -F arch={arch} -S {','.join(groups['modules'])} -k modules",
                  f"-a always,exit -F arch={arch} -S {','.join(groups['mounts'])} {login} -k mounts",
                  f"-a always,exit -F arch={arch} -S {','.join(groups['access'])} -F exit=-EACCES {login} -k access",
                  f"-a always,exit -F arch={arch} -S {','.join(groups['access'])} -F exit=-EPERM {login} -k access"]
    lines += ["", "## Privileged programs (setuid/setgid on this host) run by a login"]
    lines += [f"-a always,exit -F path={path} -F perm=x {login} -k privileged" for path in sorted(set(privileged))]
    if extra:
        lines += ["", "## base_audit_rules_extra"] + [str(line).strip() for line in extra]
    return "\n".join(lines) + "\n"


def host_syscalls(run=subprocess.run) -> dict[str, set[str]]:
    """The host's syscall names per audit arch, from ausyscall (auditd's own table)."""
    tables: dict[str, set[str]] = {}
    machine = run(["uname", "-m"], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    for arch, name in (("b64", machine), ("b32", "i386" if machine == "x86_64" else "")):
        if not name:
            continue
        try:
            out = run(["ausyscall", name, "--dump"], capture_output=True, text=True, check=False, timeout=30)
        except OSError:  # no ausyscall (auditd not installed): no table, every -S rule is refused
            break
        if out.returncode == 0:
            tables[arch] = {fields[1] for fields in (line.split() for line in out.stdout.splitlines())
                            if len(fields) == 2 and fields[0].isdigit()}
    return tables


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: audit_rules.py RULES-FILE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        text = handle.read()
    errors = file_errors(text, host_syscalls())
    for error in errors:
        print(f"{argv[1]}: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
