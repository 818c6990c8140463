"""Hold one of the harness's machine-wide locks for a script (tests/harness/lib.sh: hold_lock).

    lock.py PATH OWNER_PID WHAT WAIT_SECONDS

Two runs of the same kind at once would share what is machine-wide here (the sandbox's port, its
projects' containers and networks, .cache): a second `make demo` would stop the first one's
sandbox when it ends, `make clean` would tear the servers down under it, a second e2e would remove
the first one's machines as "left over". The script that takes the lock runs this helper beside it.

It prints one line: `locked` once it holds the lock, or `busy <who holds it>` when another run still
holds it after WAIT_SECONDS. Holding, it writes WHAT and OWNER_PID into the lock file (for the next
one's message) and stays until the run has ended: OWNER_PID and every process it started in its own
session (an ansible-playbook step goes on when the script is killed; the lock stays with it).
Daemons in a session of their own (dockerd as lib.sh starts it, the sandbox, ssh's ControlPersist
masters) are not the run, and do not keep the lock. The lock is this process's alone, in a session
of its own: the owner's Ctrl-C or its group's kill does not release it before the run has ended.
"""

import fcntl
import os
import signal
import sys
import time

POLL = 0.3
SCAN = 0.5


def main(argv):
    path, owner, what, wait = argv[1], int(argv[2]), argv[3], float(argv[4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    directory = os.path.dirname(path)
    try:
        os.mkdir(directory)
        os.chmod(directory, 0o1777)  # every user's runs share the engine and the ports
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except PermissionError:  # another user's lock file: it can still be locked, not written
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                print(f"busy {holder or 'another run'}", flush=True)
                return 0
            time.sleep(0.1)
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    note(fd, f"{what} (pid {owner}, since {since})")
    owner_session = stat(owner)
    # The lock passes to a child in a session of its own, and this process ends at once: a shell's
    # plain `wait` also waits for a process substitution, which must not be this holder.
    if os.fork() > 0:
        print("locked", flush=True)
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    if owner_session is None:
        return 0
    session = owner_session[1]
    run = {owner: owner_session[2]}  # pid -> its start time: the run's processes seen so far
    noted = False
    last_scan = 0.0
    while True:
        # the owner every POLL seconds (cheap); the whole process table every SCAN seconds while it
        # lives (about 6 ms a scan here), every POLL seconds once it has ended
        owner_alive = stat(owner) is not None
        if not owner_alive or time.monotonic() - last_scan >= SCAN:
            run = follow(run, session)
            last_scan = time.monotonic()
        if not owner_alive:
            run.pop(owner, None)
            if not run:
                return 0
            if not noted:
                left = min(run)
                note(fd, f"{what} (pid {owner}, since {since}; it ended, its process {left} {command(left)} still runs)")
                noted = True
        time.sleep(POLL)


def note(fd, text):
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (text + "\n").encode(), 0)
    except OSError:
        pass


def stat(pid):
    """(parent pid, session id, start time) of PID, None when it has ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[3]), int(fields[19])


def follow(run, session):
    """The run's processes still alive, and every process they started since in SESSION."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = stat(int(name))
            if info is not None:
                table[int(name)] = info
    alive = {pid: start for pid, start in run.items() if pid in table and table[pid][2] == start}
    children = {}
    for pid, (parent, sid, _start) in table.items():
        if sid == session:
            children.setdefault(parent, []).append(pid)
    todo = list(alive)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in alive:
                alive[child] = table[child][2]
                todo.append(child)
    return alive


def command(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return ""
    return " ".join(w.decode(errors="replace") for w in words if w)[:120]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
