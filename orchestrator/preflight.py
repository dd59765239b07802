"""Refusal up front: what validating the spec cannot tell (the filesystem, the models on disk, the Ray
address), checked before Ray starts and before anything is written, each failure in one line naming
the field. The sweep and the single-step CLIs share these checks."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

RAY_CONNECT_TIMEOUT_S = 10.0


class PreflightError(ValueError):
    """A setting that would fail later; the message starts with the field it names."""


def check_storage(storage: str, field: str = "storage") -> Path:
    """The storage directory exists, or can be created, and is writable; returns it normalised."""
    path = Path(storage).expanduser().absolute()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise PreflightError(f"{field}: {storage!r} {what}; give a directory")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_write_in(existing):
        where = "" if existing == path else f" (cannot be created in {existing})"
        raise PreflightError(f"{field}: {storage!r} is not writable{where}")
    return path


def _can_write_in(directory: Path) -> bool:
    """os.access trusts permission bits; a read-only or full filesystem shows only on a real write."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".cft-write-test-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_model_ref(ref: str, field: str = "model") -> None:
    """A local model directory is complete; a hub id is in the local cache when offline."""
    from models.resolve import ALIASES, ModelNotFound, check_hub_model_offline, looks_like_path, resolve_model

    try:
        if ref.lower() in ALIASES:
            return
        if looks_like_path(ref):
            resolve_model(ref)
        else:
            check_hub_model_offline(ref)
    except ModelNotFound as err:
        raise PreflightError(f"{field}: {err}") from None


def check_ray_address(address: str | None, field: str = "ray_address") -> None:
    """A Ray address given as host:port (or ray://host:port) answers within RAY_CONNECT_TIMEOUT_S;
    `ray.init` itself retries an unreachable address for minutes."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise PreflightError(f"{field}: {address!r} is not host:port (or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise PreflightError(f"{field}: cannot reach a Ray cluster at {address} ({reason}); is the head node "
                             "running (`ray start --head`, `ray up`)?") from None


def check_sweep(spec, address: str | None = None) -> None:
    """Everything the sweep can check before it takes its lock or starts Ray."""
    check_storage(spec.storage)
    check_storage(spec.run_dir)
    for i, m in enumerate(spec.models):
        check_model_ref(m.ref, f"models.{i}.ref")
    if address:
        check_ray_address(address, "--address")
    else:
        check_ray_address(spec.ray_address or os.environ.get("RAY_ADDRESS"),
                          "ray_address" if spec.ray_address else "RAY_ADDRESS")
