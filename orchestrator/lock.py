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
  over, and the takeover is reported. A holder is this driver only if host, PID and process start all
  match (the same PID on another host is another driver). A lock file that exists but names no holder
  (another driver between creating and writing it) counts as held until it is STALE_AFTER_S old.
- The lock file is never followed as a link (a symlinked driver.lock is refused, its target untouched),
  is readable by its owner only (0600), and its recorded command line has URL passwords redacted.
- A heartbeat that cannot be written is reported on stderr (once per failure run) and retried, never
  dropped silently: a holder whose heartbeat stops looks dead to drivers on other hosts.
"""

from __future__ import annotations

import contextlib
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
        self.heartbeat_error: str | None = None   # why the last heartbeat could not be written, if it failed
        self._io = threading.Lock()   # the heartbeat never writes to a closed (or reused) descriptor

    def acquire(self) -> "RunLock":
        """Take the lock, or raise RunLocked naming the holder. Never blocks."""
        with contextlib.suppress(FileExistsError):
            self.root.mkdir(parents=True)
            self._created_root = True
        for _ in range(20):
            fd, created = _open_lock_file(self.path)
            if fd is None:   # removed between the two opens: retry
                continue
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
            if holder is None and not created and _fresh(fd):
                os.close(fd)   # another driver between creating the file and writing its name
                raise RunLocked(in_use(self.root, None) + f" (or, if it is older than {STALE_AFTER_S:.0f} s, "
                                "it is taken over)")
            if holder and not self._is_me(holder) and holder_is_alive(holder):
                os.close(fd)   # flock is not enforced here, but its holder lives
                raise RunLocked(in_use(self.root, holder))
            self.taken_over = holder or None
            with contextlib.suppress(OSError):   # a file left by an older version was 0644
                os.fchmod(fd, 0o600)
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
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    @staticmethod
    def _is_me(holder: dict) -> bool:
        """Whether the recorded holder is this very process: host, PID and process start all match."""
        if holder.get("host") != socket.gethostname() or holder.get("pid") != os.getpid():
            return False
        mine, recorded = _process_start(os.getpid()), holder.get("process_start")
        try:
            return mine is not None and recorded is not None and abs(mine - float(recorded)) < 1.0
        except (TypeError, ValueError):
            return False

    def _me(self) -> dict:
        from orchestrator.spec import redact_url

        now = time.time()
        command = " ".join(redact_url(a) or "" for a in sys.argv)[:500]
        return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
                "started_at": now, "heartbeat_at": now, "command": command}

    def _write(self, data: dict) -> None:
        """The file is never empty while held: the new body is written over the old one, then the file
        cut to its length (a reader racing it sees old, new or mixed bytes: unreadable, which counts as
        held while fresh)."""
        body = json.dumps(data).encode()
        os.pwrite(self._fd, body, 0)
        os.ftruncate(self._fd, len(body))
        os.fsync(self._fd)

    def _heartbeat(self) -> None:
        failing = False
        while not self._stop.wait(HEARTBEAT_S):
            with self._io:
                if self._fd is None:
                    return
                try:
                    self._write(self._holder | {"heartbeat_at": time.time()})
                except Exception as err:   # reported and retried: a silent stop looks like a dead holder
                    self.heartbeat_error = f"{type(err).__name__}: {err}"
                    if not failing:
                        print(f"warning: could not refresh the heartbeat in {self.path} ({self.heartbeat_error}); "
                              f"retrying every {HEARTBEAT_S:.0f} s. Drivers on other hosts take the run over "
                              f"after {STALE_AFTER_S:.0f} s without one", file=sys.stderr, flush=True)
                    failing = True
                    continue
                if failing:
                    print(f"note: the heartbeat in {self.path} is written again", file=sys.stderr, flush=True)
                failing, self.heartbeat_error = False, None


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


def _open_lock_file(path: Path) -> tuple[int | None, bool]:
    """(descriptor, whether this call created the file); (None, False) if it vanished in between. A
    link is never followed (O_NOFOLLOW): a symlinked lock file is refused with RunLocked and its target
    left as it is; so is anything that is not a regular file."""
    flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, False
    except OSError as err:
        if err.errno == errno.ELOOP or path.is_symlink():
            raise RunLocked(f"{path} is a symbolic link; the lock file must be a plain file in the run directory "
                            "(delete the link)") from None
        raise RunLocked(f"{path} cannot be opened as the run's lock file ({os.strerror(err.errno or 0)}); "
                        "it must be a plain file: delete what is there") from None
    import stat

    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RunLocked(f"{path} is not a regular file; delete it")
    if info.st_nlink > 1:   # written in place: a hard link would overwrite the other name's file
        os.close(fd)
        raise RunLocked(f"{path} has other hard links ({info.st_nlink} names); delete it")
    return fd, False


def _fresh(fd: int) -> bool:
    """Whether the lock file was changed within STALE_AFTER_S."""
    try:
        return time.time() - os.fstat(fd).st_mtime < STALE_AFTER_S
    except OSError:
        return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
