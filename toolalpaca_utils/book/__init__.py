"""The book runner: execute the numbered notebooks with papermill, then build the HTML book.

``python -m toolalpaca_utils.book --profile cpu`` (what ``make book`` runs):

1. every ``notebooks/0[0-9]_*.ipynb`` that exists is executed in order with papermill, with the
   parameters of the chosen profile (:func:`toolalpaca_utils.profiles.load_profile`), into
   ``book/executed/<name>.ipynb``. If one fails, the run stops with a message naming the
   notebook and the cell; everything that ran so far (including the failed notebook's partial
   output) is kept.
2. generated pages are written next to the executed notebooks: ``book/executed/timings.md`` and
   ``timings.json`` (per-notebook run times from papermill's metadata) and the fragments under
   ``book/executed/fragments/`` that ``book/index.md`` and the method pages include: the headline
   table and the "reference vs this book" tables. The fragments only reference glue keys that
   an executed notebook really contains, so a notebook that does not exist yet (or a key it does
   not glue yet) is never a build error; the values themselves are pasted by ``myst_nb`` from
   the executed notebooks, never written here.
3. ``jupyter-book build . --toc book/_toc.yml --all`` renders ``_build/html``; its log is kept in
   ``_build/book-build.log`` for ``scripts/check_book.py``.

The package, one idea per module (every name below is re-exported here, so ``book.X`` works):

- :mod:`.paths` — the checkout's folders (``REPO_ROOT``, ``EXECUTED_DIR``, ...) and finding the
  numbered notebooks in them.
- :mod:`.glue` — what the book shows (``HEADLINES``, ``CONTRASTS``, ``COMPARISONS``) and reading
  the glued values back from executed notebooks.
- :mod:`.pages` — the generated pages: run times, the headline and the comparison fragments.
- :mod:`.run` — papermill execution, the kernel, and failure messages naming notebook and cell.
- :mod:`.build` — copying the book sources and the ``jupyter-book build``.
- :mod:`.cli` — the command line (``__main__`` only calls it).
"""
from toolalpaca_utils.book.build import BookBuildError, build_book, copy_book_sources
from toolalpaca_utils.book.cli import main
from toolalpaca_utils.book.glue import (
    COMPARISONS, CONTRASTS, HEADLINES, Comparison, Contrast, Headline, Pasted, available_glue,
    declared_keys, glue_ref, glued_keys, headline_items,
)
from toolalpaca_utils.book.pages import (
    collect_timings, log, notebook_timing, render_comparison, render_headline,
    render_timings_page, timings_table, write_generated_pages, write_timings,
)
from toolalpaca_utils.book.paths import (
    BOOK_DIR, BUILD_DIR, BUILD_LOG, EXECUTED_DIR, FRAGMENTS, HTML_DIR, NOTEBOOK_GLOB,
    NOTEBOOKS_DIR, PRIVATE_KERNEL, REPO_ROOT, discover_notebooks, executed_notebooks,
)
from toolalpaca_utils.book.run import NotebookFailed, kernel_name, run_notebooks, select_notebooks

__all__ = [
    "BOOK_DIR", "BUILD_DIR", "BUILD_LOG", "COMPARISONS", "CONTRASTS", "EXECUTED_DIR", "FRAGMENTS",
    "HEADLINES", "HTML_DIR", "NOTEBOOKS_DIR", "NOTEBOOK_GLOB", "PRIVATE_KERNEL", "REPO_ROOT",
    "BookBuildError", "Comparison", "Contrast", "Headline", "NotebookFailed", "Pasted",
    "available_glue", "declared_keys", "build_book", "collect_timings", "copy_book_sources", "discover_notebooks",
    "executed_notebooks", "glue_ref", "glued_keys", "headline_items", "kernel_name", "log",
    "main", "notebook_timing", "render_comparison", "render_headline", "render_timings_page",
    "run_notebooks", "select_notebooks", "timings_table", "write_generated_pages",
    "write_timings",
]
