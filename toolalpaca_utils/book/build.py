"""Building the HTML: copying the book's sources elsewhere and running ``jupyter-book build``.

Owns :func:`copy_book_sources` (a checkout-independent build folder, ``--source``) and
:func:`build_book`, which rewrites the generated pages, renders ``_build/html`` and keeps the log
in ``_build/book-build.log`` for ``scripts/check_book.py``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from toolalpaca_utils.book.pages import write_generated_pages
from toolalpaca_utils.book.paths import BOOK_DIR, BUILD_LOG, REPO_ROOT


class BookBuildError(RuntimeError):
    pass


def copy_book_sources(dest: Path | str) -> Path:
    """Copy the book's sources (``_config.yml`` and ``book/`` without ``executed/``) to ``dest``.

    A book built there is independent of the checkout's ``book/executed`` and ``_build``: tests
    use it so that a run does not collide with another ``make book`` in the same checkout.
    """
    dest = Path(dest)
    (dest / "book").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "_config.yml", dest / "_config.yml")
    shutil.copytree(BOOK_DIR, dest / "book", dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names
                                             if Path(d) == BOOK_DIR and n == "executed"])
    return dest


def _jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
            "sys.argv[0] = 'jupyter-book'; sys.exit(main())"]


def build_book(source: Path | str = REPO_ROOT, log_path: Path | str = BUILD_LOG,
               all_pages: bool = True) -> Path:
    """Render the book into ``<source>/_build/html``; return the path of ``index.html``.

    A full rebuild is the default because the landing page pastes values from other documents:
    an incremental build would keep stale numbers on a page whose own source did not change.
    """
    source = Path(source)
    write_generated_pages(source / "book" / "executed")
    if all_pages:
        # no leftovers of an earlier build: pages of notebooks that are gone, stale glue caches
        for stale in ("html", "jupyter_execute", ".doctrees"):
            shutil.rmtree(source / "_build" / stale, ignore_errors=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = _jupyter_book_cmd() + ["build", str(source), "--toc", str(source / "book" / "_toc.yml"),
                                 "--config", str(source / "_config.yml")]
    if all_pages:
        cmd.append("--all")
    print("[book] " + " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            sys.stderr.write(line)
        rc = proc.wait()
    index = source / "_build" / "html" / "index.html"
    if rc != 0 or not index.is_file():
        raise BookBuildError(f"jupyter-book build failed (exit {rc}); see {log_path}")
    print(f"[book] built {index} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return index
