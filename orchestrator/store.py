"""What a sweep persists under its run directory, written atomically so readers never see half a file.

    <storage>/<name>/spec.json             the validated spec
    <storage>/<name>/baselines.json        one entry per base model: its scores before tuning
    <storage>/<name>/baselines/            their per-item rows, and why a base model could not be scored
    <storage>/<name>/trials/<key>.json     one record per trial: config, status, metrics, artifacts
    <storage>/<name>/trials/rows/<key>.rows.json  its per-prompt evaluation rows (each evaluation's list)
    <storage>/<name>/optuna.db             the Optuna studies (one per cell), for optuna-dashboard
    <storage>/<name>/adapters/<key>/       trained adapters
    <storage>/<name>/pareto/               Pareto tables and plots, written at the end
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

from pydantic import ValidationError

from orchestrator.records import TrialRecord

UNREADABLE = (ValueError, ValidationError, UnicodeDecodeError)   # json.JSONDecodeError is a ValueError

# A trial key or model label as it names files: what cells.trial_key makes of a validated model label
# and method. No "/", no leading "." (so never "." or ".."), and short enough for any filesystem's
# 255-byte names with the ".json.unreadable" suffix and the trainer's own subdirectories beside it.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


class UnsafePath(ValueError):
    """A path the sweep would write lies outside its run directory, or a name is no valid key."""


def check_key(key: str, what: str = "trial key") -> str:
    """`key` itself, if it is safe as one path component (KEY_PATTERN); else UnsafePath."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise UnsafePath(f"{what} {str(key)[:80]!r} is not a valid name (letters, digits, '_', '.', '-'; "
                         "not starting with '.'; at most 200 characters)")
    return key


def write_bytes_atomic(path: str | Path, body: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, flushed to disk, then renamed over
    it, and the directory entry synced. A failed write (ENOSPC, EIO) leaves neither a partial file nor
    a stray .tmp, and the old file stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_os():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_json(path: str | Path, data) -> None:
    write_bytes_atomic(path, json.dumps(jsonable(data), indent=1, sort_keys=True).encode())


class _suppress_os:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        return exc_type is not None and issubclass(exc_type, OSError)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (a crash after it keeps the new file); not every filesystem allows it."""
    with _suppress_os():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def jsonable(x):
    """NaN/inf become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class BaselineUnavailable(RuntimeError):
    """A trial's base model could not be scored in this run: the trial is measured on resume."""


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir).expanduser().resolve()

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    def inside(self, path: str | Path) -> Path:
        """`path`, resolved, if it lies under the run directory (symlinks followed); else UnsafePath.
        Every path built from a key or label passes here before anything is written to it."""
        resolved = Path(path).expanduser().resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise UnsafePath(f"{path} lies outside the run directory {self.root}; refusing to write it")
        return resolved

    def trial_path(self, key: str) -> Path:
        return self.inside(self.trials_dir / f"{check_key(key)}.json")

    def adapter_dir(self, key: str) -> Path:
        return self.inside(self.root / "adapters" / check_key(key))

    def optuna_url(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    def read_trial(self, key: str) -> TrialRecord | None:
        """The trial's record, or None if it has none or an unreadable one."""
        try:
            return _load_record(self.trial_path(key))
        except (FileNotFoundError, *UNREADABLE):
            return None

    def write_trial(self, record: TrialRecord) -> None:
        write_json(self.trial_path(record.key), record.model_dump())

    def trial_rows(self, key: str) -> dict[str, list[dict]]:
        """The trial's per-item evaluation rows, by evaluation (as the base model's); {} if none."""
        try:
            data = json.loads(self._trial_rows_path(key).read_bytes())
        except (FileNotFoundError, *UNREADABLE):
            return {}
        return data if isinstance(data, dict) else {}

    def save_trial_rows(self, key: str, rows: dict[str, list[dict]]) -> None:
        write_json(self._trial_rows_path(key), rows)

    def trial_rows_keys(self) -> list[str]:
        """Keys of the trials whose rows are saved."""
        folder = self.trials_dir / "rows"
        return sorted(p.name.removesuffix(".rows.json") for p in folder.glob("*.rows.json")) if folder.exists() else []

    def _trial_rows_path(self, key: str) -> Path:
        # a folder of its own: trial_records reads every trials/*.json as a record
        return self.inside(self.trials_dir / "rows" / f"{check_key(key)}.rows.json")

    def trial_records(self) -> list[TrialRecord]:
        """Every readable record; an unreadable one (truncated, not JSON, not a record, or naming another
        key than its file name) is named in a warning and skipped, so one bad file never hides the others."""
        records = []
        for path in self._trial_files():
            try:
                records.append(_load_record(path))
            except UNREADABLE as err:
                warnings.warn(f"skipping unreadable trial record {path}: {_reason(err)}", stacklevel=2)
        return records

    def unreadable_trials(self) -> dict[str, str]:
        """Trial key -> why its record cannot be read."""
        bad = {}
        for path in self._trial_files():
            try:
                _load_record(path)
            except UNREADABLE as err:
                bad[path.stem] = _reason(err)
        return bad

    def _trial_files(self) -> list[Path]:
        """The record files whose names are valid keys (paths derive from file names, never from what a
        file says); any other file under trials/ is named in a warning and left alone."""
        if not self.trials_dir.exists():
            return []
        files = []
        for path in sorted(self.trials_dir.glob("*.json")):
            if KEY_PATTERN.match(path.stem) and not path.is_symlink() and path.is_file():
                files.append(path)
            else:
                warnings.warn(f"ignoring {path}: not a trial record (its name is no valid trial key, or it is "
                              "a link or not a file)", stacklevel=3)
        return files

    def has_results(self) -> bool:
        """Whether anything beyond the spec was written: a trial record or a baseline."""
        return bool(self._trial_files()) or (self.root / "baselines.json").exists()

    def saved_spec(self):
        """The SweepSpec this run directory was started with, or None."""
        from orchestrator.spec import LEGACY_METRICS, SpecError, SweepSpec

        path = self.root / "spec.json"
        try:
            data = json.loads(path.read_bytes())
            for objective in data.get("objectives", []):   # written before objectives named their metric
                if objective.get("metric") is None and objective.get("name") in LEGACY_METRICS:
                    objective["metric"] = LEGACY_METRICS[objective["name"]]
            return SweepSpec.model_validate(data)
        except FileNotFoundError:
            return None
        except (*UNREADABLE, AttributeError) as err:   # AttributeError: JSON that is not a mapping
            raise SpecError(f"{path} is unreadable ({_reason(err)}); it records which sweep this directory "
                            "holds: restore it, or use another name or storage") from None

    def baselines(self) -> dict:
        """Each base model's saved scores; an unreadable file counts as none (they are scored again)."""
        path = self.root / "baselines.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except UNREADABLE as err:
            warnings.warn(f"ignoring unreadable {path} ({_reason(err)}); the base models are scored again",
                          stacklevel=2)
            return {}
        return data if isinstance(data, dict) else {}

    def baseline_rows(self, model_label: str) -> dict[str, list[dict]]:
        """The base model's per-item evaluation rows (what paired standard errors need); {} if none."""
        try:
            return json.loads(self._baseline_rows_path(model_label).read_bytes())
        except (FileNotFoundError, *UNREADABLE):
            return {}

    def save_baseline_rows(self, model_label: str, rows: dict[str, list[dict]]) -> None:
        write_json(self._baseline_rows_path(model_label), rows)

    def _baseline_rows_path(self, model_label: str) -> Path:
        return self.inside(self.root / "baselines" / f"{check_key(model_label, 'model label')}.rows.json")

    def save_baseline(self, model_label: str, entry: dict) -> None:
        data = self.baselines()
        data[model_label] = entry
        write_json(self.root / "baselines.json", data)

    def baseline_error(self, model_label: str) -> str | None:
        """Why the base model could not be scored in this run, or None."""
        path = self._baseline_error_path(model_label)
        try:
            if path.exists() and path.stat().st_size == 0:   # mark_baseline_failed: not even the error fit
                return "its scores could not be saved, nor its error (is the run directory's disk full?)"
            return read_json(path, {}).get("error")
        except (*UNREADABLE, AttributeError):   # AttributeError: JSON that is not a mapping
            return "its error file is unreadable"

    def save_baseline_error(self, model_label: str, error: str) -> None:
        write_json(self._baseline_error_path(model_label), {"error": error})

    def mark_baseline_failed(self, model_label: str) -> None:
        """The last resort where save_baseline_error failed (a full disk): an empty error file, which
        takes no data blocks, so the base model's trials still stop waiting. Best effort."""
        with _suppress_os():
            path = self._baseline_error_path(model_label)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644))

    def clear_baseline_error(self, model_label: str) -> None:
        self._baseline_error_path(model_label).unlink(missing_ok=True)

    def _baseline_error_path(self, model_label: str) -> Path:
        return self.inside(self.root / "baselines" / f"{check_key(model_label, 'model label')}.error.json")

    def wait_for_baseline(self, model_label: str, poll_s: float = 1.0) -> dict:
        """The base model's saved metrics, waiting while it is scored (beside the first trials:
        orchestrator.baselines); raises BaselineUnavailable naming its error if it could not be scored."""
        while True:
            entry = self.baselines().get(model_label)
            if entry is not None:
                return entry["metrics"]
            error = self.baseline_error(model_label)
            if error is not None:
                raise BaselineUnavailable(f"base model {model_label} could not be scored ({error}); resuming the "
                                          "sweep scores it again")
            time.sleep(poll_s)


def aside_path(path: str | Path, suffix: str = ".unreadable") -> Path:
    """A free name beside `path` to keep a bad file under: `<name><suffix>`, else `<name><suffix>.1`, ...,
    so a second bad file never overwrites the first one's kept copy."""
    path = Path(path)
    candidate, n = path.with_name(f"{path.name}{suffix}"), 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}{suffix}.{n}")
    return candidate


def _load_record(path: Path) -> TrialRecord:
    """The record in `path`; ValueError if it names a key other than its file's (a planted or copied
    record must not steer where a rerun writes: paths derive from file names)."""
    record = TrialRecord.model_validate_json(path.read_bytes())
    if record.key != path.stem:
        raise ValueError(f"its key {record.key[:80]!r} is not its file name {path.stem!r}")
    return record


def _reason(err: Exception) -> str:
    """The first line of why a file could not be read."""
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
