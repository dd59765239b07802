"""One driver per run directory: `<run>/driver.lock` names the sweep that holds it.

Two drivers writing one run directory corrupt it (each marks the other's running trial interrupted and
runs it again), so the driver takes this lock before writing anything and keeps it until it exits.

- The lock is an exclusive `flock` on the file, held for the driver's lifetime: the OS drops it when
  the process dies, and on a shared filesystem with NFSv4 locking (EFS) it holds across nodes.
- The file says who holds it (host, PID, process start time, command, a heartbeat refreshed every
  minute), so a refused sweep names the holder.
- Where `flock` is not enforced (some FUSE mounts), the recorded holder still counts: a live process
  on this host, or a fresh heartbeat from another host, holds the lock. A holder that is dead (its PID
  gone or reused on this host, or its heartbeat older than STALE_AFTER_S from another host) is taken
  over, and the takeover is reported.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

LOCK_NAME = "driver.lock"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0   # another host's holder whose heartbeat is older than this is dead


class RunLocked(RuntimeError):
    """Another live driver holds the run directory."""


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def describe(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
    return (f"PID {holder.get('pid')} on host {holder.get('host')}, started {started}"
            f" ({holder.get('command', '?')})")


def in_use(run_dir: Path, holder: dict | None) -> str:
    """The refusal of a sweep whose run directory another one holds."""
    who = describe(holder) if holder else "another process (the lock file names no holder yet)"
    return (f"{run_dir} is in use by another sweep: {who}. Wait for it to finish or stop it; if it is gone, "
            f"delete {Path(run_dir) / LOCK_NAME}")


def holder_is_alive(holder: dict, now: float | None = None) -> bool:
    """Whether the driver a lock file names still runs (see the module docstring)."""
    if holder.get("host") == socket.gethostname():
        start = _process_start(int(holder.get("pid", -1)))
        recorded = holder.get("process_start") or start
        return start is not None and abs(start - float(recorded)) < 1.0   # not a reused PID
    age = (now or time.time()) - float(holder.get("heartbeat_at", holder.get("started_at", 0)))
    return age < STALE_AFTER_S


class RunLock:
    """The driver's lock on one run directory (a context manager)."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)
        self.path = self.root / LOCK_NAME
        self.taken_over: dict | None = None   # the dead holder this lock was taken from, if any
        self._fd: int | None = None
        self._created_root = False
        self._stop = threading.Event()
        self._io = threading.Lock()   # the heartbeat never writes to a closed (or reused) descriptor

    def acquire(self) -> "RunLock":
        """Take the lock, or raise RunLocked naming the holder. Never blocks."""
        try:
            self.root.mkdir(parents=True)
            self._created_root = True
        except FileExistsError:
            pass
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:   # ENOLCK, EOPNOTSUPP: no flock here, the recorded holder decides
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    holder = _read(fd)
                    os.close(fd)
                    raise RunLocked(in_use(self.root, holder)) from None
            if not _same_file(fd, self.path):   # released and removed while we opened it: retry
                os.close(fd)
                continue
            holder = _read(fd)
            if holder and holder.get("pid") != os.getpid() and holder_is_alive(holder):
                os.close(fd)   # flock is not enforced here, but its holder lives
                raise RunLocked(in_use(self.root, holder))
            self.taken_over = holder or None
            self._fd = fd
            self._holder = self._me()
            self._write(self._holder)
            threading.Thread(target=self._heartbeat, daemon=True, name="run-lock-heartbeat").start()
            return self
        raise RunLocked(f"{self.path}: could not take the lock (it kept changing); try again")

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        with self._io:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        if self._created_root:   # a sweep that wrote nothing leaves no directory behind
            try:
                self.root.rmdir()
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def _me(self) -> dict:
        now = time.time()
        return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
                "started_at": now, "heartbeat_at": now, "command": " ".join(sys.argv)[:500]}

    def _write(self, data: dict) -> None:
        body = json.dumps(data).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, body, 0)
        os.fsync(self._fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._io:
                if self._fd is None:
                    return
                try:
                    self._write(self._holder | {"heartbeat_at": time.time()})
                except OSError:
                    return


def read_holder(run_dir: str | Path) -> dict | None:
    """The holder a run directory's lock file names, or None."""
    try:
        with open(Path(run_dir) / LOCK_NAME, "rb") as f:
            return json.loads(f.read() or b"null")
    except (OSError, ValueError):
        return None


def _read(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 65536, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
