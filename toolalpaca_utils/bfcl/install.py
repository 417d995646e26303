"""Where BFCL lives: ``bfcl-eval`` installed with ``--no-deps`` into a folder of its own.

``bfcl-eval`` pins ``numpy==1.26.4`` and a dozen client SDKs (OpenAI, Anthropic, Mistral, ...),
none of which its AST checker needs; installed into the book's environment it would downgrade
numpy under torch. So it goes, without its dependencies, into ``.bfcl/<version>/`` (or
``$TOOLALPACA_BFCL_HOME``), which is never put on the book's ``sys.path``: the project reads the
question and answer files from it and runs the checker from it in a subprocess
(:mod:`toolalpaca_utils.bfcl.checker`). ``make setup`` installs it (``make setup-bfcl`` alone);
nothing is downloaded at run time unless asked.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The one pin of the BFCL version (questions, answers and checker all come from this release).
BFCL_VERSION = "2026.3.23"
MAKE_TARGET = "make setup-bfcl"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class BfclMissingError(RuntimeError):
    """bfcl-eval is not installed in its folder."""


def install_dir(version: str = BFCL_VERSION) -> Path:
    """The folder that holds the ``bfcl_eval`` package: ``$TOOLALPACA_BFCL_HOME/<version>`` or
    ``<repo>/.bfcl/<version>``."""
    home = os.environ.get("TOOLALPACA_BFCL_HOME") or _REPO_ROOT / ".bfcl"
    return Path(home) / version


def data_dir(version: str = BFCL_VERSION) -> Path:
    return install_dir(version) / "bfcl_eval" / "data"


def is_installed(version: str = BFCL_VERSION) -> bool:
    return (install_dir(version) / "bfcl_eval" / "eval_checker" / "ast_eval" / "ast_checker.py").is_file()


def require_installed(version: str = BFCL_VERSION) -> Path:
    """The install folder, or a clear error naming the make target that installs it."""
    if not is_installed(version):
        raise BfclMissingError(
            f"bfcl-eval {version} is not installed in {install_dir(version)}; run `{MAKE_TARGET}` (part of "
            f"`make setup`; it needs PyPI once, never again), or `python -m toolalpaca_utils.bfcl.install`")
    return install_dir(version)


def ensure_installed(version: str = BFCL_VERSION, *, download: bool = True) -> Path:
    """Install ``bfcl-eval==version`` (no dependencies) into :func:`install_dir` unless it is there.

    Offline-safe when already installed: nothing is fetched. The install goes to a temporary
    folder renamed into place, so an interrupted download never looks installed."""
    if is_installed(version) or not download:
        return require_installed(version)
    target = install_dir(version)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
           "--target", str(tmp), f"bfcl-eval=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BfclMissingError(f"installing bfcl-eval {version} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return require_installed(version)


def main() -> int:
    print(ensure_installed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
