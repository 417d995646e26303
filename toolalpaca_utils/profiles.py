"""Run profiles: papermill parameter sets in ``notebooks/profiles/<name>.yaml``.

A profile file has a ``common`` section, injected into every notebook, and one section per
notebook (keyed by the notebook's stem, e.g. ``01_toolset``) that overrides it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

PROFILES_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "profiles"
PROFILES = ("tiny", "cpu", "gpu")


def load_profile(name: str, notebook: str | None = None) -> dict:
    """Parameters for ``notebook`` (its stem) under profile ``name``: common + its section."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no profile {name!r} ({path}); available: {', '.join(PROFILES)}")
    data = yaml.safe_load(path.read_text()) or {}
    params = dict(data.get("common") or {})
    if notebook is not None:
        params.update(data.get(Path(notebook).stem) or {})
    params["profile"] = name
    return params
