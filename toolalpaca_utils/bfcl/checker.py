"""BFCL's own AST checker decides correctness: called in a subprocess on the installed
``bfcl-eval`` (see ``_checker_main.py`` for why a subprocess and what it imports)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .install import require_installed

SCRIPT = Path(__file__).with_name("_checker_main.py")
MODEL_NAME = "toolalpaca-student"  # only its config flag is read (see _checker_main._Config)


class CheckerError(RuntimeError):
    """BFCL's checker did not run."""


def check(items: Sequence[dict], *, timeout: float = 300.0) -> dict:
    """Verdicts of BFCL's checker for ``items`` (``{"id", "category", "function", "decoded",
    "answer"}``; ``decoded`` is BFCL's decoded form ``[{"func": {"arg": value}}, ...]``), in
    order, and BFCL's non-live summary: ``{"verdicts": [...], "summary": {category: accuracy,
    "non_live_ast_summary": ...}}``."""
    request = {"install": str(require_installed()), "model_name": MODEL_NAME, "items": list(items)}
    # the book's own interpreter: the checker needs only the standard library once its SDK
    # table is replaced, and BFCL's score helper imports numpy and pandas, which the book has
    done = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise CheckerError(f"BFCL's checker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)
