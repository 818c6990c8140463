"""Hold one of the harness's machine-wide locks for a script (tests/harness/lib.sh: hold_lock).

    lock.py PATH OWNER_PID WHAT WAIT_SECONDS

Two runs of the same kind at once would share what is machine-wide here (the sandbox's port, its
projects' containers and networks, .cache): a second `make demo` would stop the first one's
sandbox when it ends, `make clean` would tear the servers down under it, a second e2e would remove
the first one's machines as "left over". The script that takes the lock runs this helper beside it.

It prints one line: `locked` once it holds the lock, or `busy <who holds it>` when another run still
holds it after WAIT_SECONDS. Holding, it writes WHAT and OWNER_PID into the lock file (for the next
one's message) and stays until OWNER_PID has ended. The lock is this process's alone: a daemon the
owner starts (dockerd, the sandbox, ssh's ControlPersist masters) never inherits it, and it is
released when the owner ends in any way (a crash, kill -9), not before (the owner's clean-up after
a Ctrl-C still runs under the lock).
"""

import fcntl
import os
import signal
import sys
import time


def main(argv):
    path, owner, what, wait = argv[1], int(argv[2]), argv[3], float(argv[4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{what} (pid {owner}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
    # The lock passes to a child in a session of its own, and this process ends at once: a shell's
    # plain `wait` also waits for a process substitution, which must not be this holder. Outside the
    # owner's process group, the owner's Ctrl-C or its group's kill does not release it before the
    # owner has ended.
    if os.fork() > 0:
        print("locked", flush=True)
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    while alive(owner):
        time.sleep(0.2)
    return 0


def alive(pid):
    """Whether PID still runs (a zombie, ended but not yet waited for, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


if __name__ == "__main__":
    sys.exit(main(sys.argv))
