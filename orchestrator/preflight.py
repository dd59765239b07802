"""Refusal up front: what validating the spec cannot tell (the filesystem, the models on disk, the Ray
address), checked before Ray starts and before anything is written, each failure in one line naming
the field. The sweep and the single-step CLIs share these checks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class PreflightError(ValueError):
    """A setting that would fail later; the message starts with the field it names."""


def check_storage(storage: str, field: str = "storage") -> Path:
    """The storage directory exists, or can be created, and is writable; returns it normalised."""
    path = Path(storage).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor))   # the deepest one there
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
    from models.resolve import ModelNotFound, check_model_ref as check

    try:
        check(ref)
    except ModelNotFound as err:
        raise PreflightError(f"{field}: {err}") from None


def check_ray_address(address: str | None, field: str = "ray_address") -> None:
    from trainers.ray_local import check_ray_address as check

    try:
        check(address)
    except (ValueError, ConnectionError) as err:
        raise PreflightError(f"{field}: {err}") from None


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
