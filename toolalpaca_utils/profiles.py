"""Run profiles: papermill parameter sets in ``notebooks/profiles/<name>.yaml``.

A profile file has a ``common`` section, injected into every notebook, and one section per
notebook (keyed by the notebook's stem, e.g. ``01_toolset``) that overrides it. Every key is
checked against the notebook's dataclass in :mod:`toolalpaca_utils.params`: a misspelt key or a
value of the wrong type stops the run with the file, the section and the key named.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .params import NOTEBOOK_PARAMS, defaults, validate_profile

PROFILES_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "profiles"
PROFILES = ("tiny", "cpu", "gpu")


def profile_path(name: str) -> Path:
    """``notebooks/profiles/<name>.yaml``, or ``name`` itself when it is a path to a YAML file."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no profile {name!r} ({path}); available: {', '.join(PROFILES)} "
                                "or the path of a .yaml file")
    return path


def load_profile(name: str, notebook: str | None = None) -> dict:
    """Parameters of ``notebook`` (its stem) under profile ``name``: the notebook's defaults, then
    the profile's common section, then its own section. Without ``notebook``: the checked file's
    common section. Raises :class:`toolalpaca_utils.params.ProfileError` for a bad key or type."""
    path = profile_path(name)
    data = yaml.safe_load(path.read_text()) or {}
    validate_profile(data, str(path))
    # a notebook outside the book's six (a test's, a user's own) gets the common section only
    params = defaults(notebook) if notebook is not None and Path(notebook).stem in NOTEBOOK_PARAMS else {}
    params.update(data.get("common") or {})
    if notebook is not None:
        params.update(data.get(Path(notebook).stem) or {})
    params["profile"] = path.stem  # a profile given as a path runs under its file's name
    return params
