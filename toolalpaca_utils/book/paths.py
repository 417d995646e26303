"""Where the book lives: the checkout's folders and the numbered notebooks found in them.

The package sits at ``toolalpaca_utils/book/``, so the repository root is three levels above
this file.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"
EXECUTED_DIR = BOOK_DIR / "executed"
BUILD_DIR = REPO_ROOT / "_build"
HTML_DIR = BUILD_DIR / "html"
BUILD_LOG = BUILD_DIR / "book-build.log"
NOTEBOOK_GLOB = "0[0-9]_*.ipynb"
FRAGMENTS = "fragments"
PRIVATE_KERNEL = "toolalpaca-book"


def discover_notebooks(notebooks_dir: Path | str = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``0[0-9]_*.ipynb``) that exist, in order."""
    return sorted(Path(notebooks_dir).glob(NOTEBOOK_GLOB))


def executed_notebooks(executed_dir: Path | str = EXECUTED_DIR) -> list[Path]:
    return sorted(Path(executed_dir).glob(NOTEBOOK_GLOB))
