"""The command line, ``python -m toolalpaca_utils.book`` (what ``make book`` runs).

Owns :func:`main`: parse the arguments, run the notebooks, build the book, print the run times.
It lives here rather than in ``__main__.py`` so that the package can re-export it without
``python -m`` importing ``__main__`` twice (runpy warns about that).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from toolalpaca_utils.book.build import BookBuildError, build_book, copy_book_sources
from toolalpaca_utils.book.pages import _fmt_duration, collect_timings
from toolalpaca_utils.book.paths import REPO_ROOT, discover_notebooks
from toolalpaca_utils.book.run import NotebookFailed, run_notebooks, select_notebooks
from toolalpaca_utils.params import ProfileError
from toolalpaca_utils.profiles import PROFILES


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m toolalpaca_utils.book",
        description="Run the numbered notebooks with papermill and build the book.")
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "cpu"),
                    help=f"run profile: {', '.join(PROFILES)} (default: $PROFILE or cpu)")
    ap.add_argument("--only", default="",
                    help="comma-separated notebooks to run, e.g. 01_toolset,02 (others keep "
                         "their earlier outputs)")
    ap.add_argument("--skip-run", action="store_true", help="do not run notebooks; build only")
    ap.add_argument("--no-build", action="store_true", help="run notebooks; do not build")
    ap.add_argument("--quiet-cells", action="store_true",
                    help="do not echo cell outputs to the terminal (papermill --log-output)")
    ap.add_argument("--source", type=Path, default=None,
                    help="build in this directory instead of the checkout: the book sources are "
                         "copied there, notebooks execute into DIR/book/executed and the HTML "
                         "goes to DIR/_build/html")
    args = ap.parse_args(argv)
    root = REPO_ROOT if args.source is None else copy_book_sources(args.source.resolve())
    executed, log_path = root / "book" / "executed", root / "_build" / "book-build.log"

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO)
    started = datetime.now(timezone.utc)
    try:
        if not args.skip_run:
            only = [s for s in args.only.split(",") if s.strip()]
            nbs = select_notebooks(discover_notebooks(), only) if only else None
            run_notebooks(args.profile, nbs, out_dir=executed, log_output=not args.quiet_cells)
        if not args.no_build:
            build_book(root, log_path=log_path)
    except NotebookFailed as exc:
        print(f"\n[book] STOPPED: {exc}", file=sys.stderr)
        return 1
    except (BookBuildError, FileNotFoundError, ProfileError) as exc:
        print(f"\n[book] ERROR: {exc}", file=sys.stderr)
        return 1
    timings = collect_timings(executed)
    if timings:
        print("\n[book] notebook run times:", file=sys.stderr)
        for t in timings:
            print(f"  {t['notebook']:<16} {t['profile'] or '-':<5} {t['status']:<10} "
                  f"{_fmt_duration(t['duration_s'])}", file=sys.stderr)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    print(f"[book] done in {_fmt_duration(elapsed)}"
          + ("" if args.no_build else f"; open {root / '_build' / 'html' / 'index.html'}"),
          file=sys.stderr)
    return 0
