#!/usr/bin/env python
"""Check the built book as a reader sees it, in headless Chromium.

    .venv/bin/python scripts/check_book.py [--html _build/html] [--page 01_toolset]

Opens the landing page and one executed-notebook page with Debian's ``chromium`` (headless, no
network features), saves screenshots under ``_build/screenshots/`` and reads the rendered DOM.
It fails (exit 1, one line per problem) when

- a headline number did not render: every headline key that an executed notebook glues must
  appear on the landing page with the value stored in that notebook (formatted as the
  ``{glue:text}`` role formats it); the same for the "this book" column of the method pages;
- a page that pastes values shows ``???``, any page shows a docutils system message, or the
  build log has glue warnings (missing keys, unknown documents, formatting errors);
- the notebook page lost its figures: fewer ``<img>`` tags than image outputs in the executed
  notebook, or an image file that does not exist.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import nbformat  # noqa: E402
from myst_nb.core.variables import format_plain_text  # noqa: E402

from toolalpaca_utils import book  # noqa: E402

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000",
]
GLUE_LOG_PATTERNS = [
    re.compile(r"glue", re.I),
    re.compile(r"not found in doc", re.I),
    re.compile(r"Pending glue reference", re.I),
]


class CheckFailed(Exception):
    pass


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise CheckFailed("no headless browser found (looked for chromium, chromium-browser, "
                      "google-chrome); install it with `make browser` (Debian package chromium)")


def _chromium(exe: str, url: str, extra: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="check-book-chromium-") as profile_dir:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *extra, url]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(f"chromium did not finish within {timeout} s on {url}") from exc
    return proc


def screenshot(exe: str, page: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    proc = _chromium(exe, page.as_uri(), [f"--screenshot={png}", f"--window-size={width},{height}"])
    if not png.is_file() or png.stat().st_size < 5_000:
        raise CheckFailed(f"no usable screenshot of {page} (chromium exit {proc.returncode}): "
                          f"{proc.stderr.strip()[-500:]}")
    return png


_HIDE_BEFORE = """<script>
window.addEventListener("load", function () {
  var node = document.getElementById(%s);
  while (node && node.parentElement && node.tagName !== "ARTICLE") {
    for (var p = node.previousElementSibling; p; p = p.previousElementSibling) {
      p.style.display = "none";
    }
    node = node.parentElement;
  }
});
</script>"""


def figure_screenshot(exe: str, page: Path, section_id: str, png: Path) -> Path:
    """Screenshot of a page from the section holding its first figure.

    Headless Chromium paints only the top of a page (scrolling to ``#fragment`` leaves the
    screenshot blank), so a temporary copy of the page, next to it so that every relative link
    still resolves, hides what comes before that section; the copy is removed afterwards.
    """
    text = page.read_text(errors="replace")
    script = _HIDE_BEFORE % json.dumps(section_id)
    tmp = page.with_name(f".check-{page.stem}-figure.html")
    tmp.write_text(text.replace("</body>", script + "</body>", 1))
    try:
        return screenshot(exe, tmp, png)
    finally:
        tmp.unlink(missing_ok=True)


def dump_dom(exe: str, page: Path) -> str:
    proc = _chromium(exe, page.as_uri(), ["--dump-dom", "--window-size=1280,2000"])
    if proc.returncode != 0 or "<html" not in proc.stdout.lower():
        raise CheckFailed(f"chromium could not render {page} (exit {proc.returncode}): "
                          f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


class _DomReader(HTMLParser):
    """Visible text, pasted glue values and image sources of a rendered page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.pasted: list[str] = []
        self.images: list[str] = []
        self.image_sections: list[str | None] = []  # id of the innermost section of each <img>
        self._sections: list[str | None] = []
        self.system_messages = 0
        self._skip = 0
        self._pasted_depth = 0
        self._current: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "section":
            self._sections.append(a.get("id"))
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
            self.image_sections.append(next((i for i in reversed(self._sections) if i), None))
        if "system-message" in classes:
            self.system_messages += 1
        if self._pasted_depth:
            self._pasted_depth += 1
        elif tag == "span" and "pasted-text" in classes:
            self._pasted_depth = 1
            self._current = []

    def handle_endtag(self, tag):
        if tag == "section" and self._sections:
            self._sections.pop()
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if self._pasted_depth:
            self._pasted_depth -= 1
            if not self._pasted_depth:
                self.pasted.append("".join(self._current).strip())

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._pasted_depth:
            self._current.append(data)


def read_dom(dom: str) -> _DomReader:
    reader = _DomReader()
    reader.feed(dom)
    return reader


def resolve_redirect(page: Path) -> Path:
    """Sphinx-external-toc writes ``index.html`` as a redirect to the root document."""
    text = page.read_text(errors="replace")
    m = re.search(r'http-equiv="Refresh"\s+content="\d+;\s*url=([^"]+)"', text, re.I)
    if m and len(text) < 2_000:
        return (page.parent / html.unescape(m.group(1))).resolve()
    return page


def expected_comparison(page: str, executed_dir: Path) -> list[tuple[str, str, str]]:
    """``(label, key, rendered value)`` for the "this book" column of a method page."""
    glue = book.available_glue(executed_dir)
    return [(row.label, row.key, format_plain_text(glue[row.notebook][row.key], row.fmt))
            for row in book.COMPARISONS[page] if row.key in glue.get(row.notebook, {})]


def check_pasted(name: str, reader: _DomReader, expected: list[tuple[str, str, str]]) -> list[str]:
    """Every expected value is pasted on the page (as a multiset: equal values count twice)."""
    problems = []
    remaining = list(reader.pasted)
    for label, key, value in expected:
        if value in remaining:
            remaining.remove(value)
        else:
            problems.append(f"{name}: {key!r} ({label}) should show {value!r}; "
                            f"pasted values on the page: {reader.pasted}")
    if any(v == "" for v in reader.pasted):
        problems.append(f"{name}: an empty glued value was rendered")
    return problems


def expected_headline(executed_dir: Path) -> list[tuple[str, str, str]]:
    """``(label, key, rendered value)`` for every headline entry the build should show."""
    return [(i.label, i.key, format_plain_text(i.text, i.fmt))
            for i in book.headline_items(executed_dir)]


def image_outputs(nb_path: Path) -> int:
    nb = nbformat.read(str(nb_path), as_version=4)
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("mime_prefix"):
                continue  # glued without display: not shown in the notebook page
            if any(k.startswith("image/") for k in out.get("data", {})):
                n += 1
    return n


def check_build_log(log_path: Path) -> list[str]:
    if not log_path.is_file():
        return [f"build log {log_path} not found (build with `make book` or "
                "`python -m toolalpaca_utils.book --skip-run`)"]
    problems = []
    for line in log_path.read_text(errors="replace").splitlines():
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if ("WARNING" in clean or "ERROR" in clean) and any(p.search(clean) for p in GLUE_LOG_PATTERNS):
            problems.append(f"build log: {clean.strip()}")
    return problems


def check_page_text(name: str, reader: _DomReader, *, pasted_page: bool = True) -> list[str]:
    """Rendering problems. ``???`` is only looked for on pages that paste glued values: a
    notebook page may legitimately print it (a small model's output, for one)."""
    problems = []
    text = " ".join(reader.text)
    if pasted_page and "???" in text:
        problems.append(f"{name}: the rendered page shows '???'")
    if reader.system_messages:
        problems.append(f"{name}: {reader.system_messages} docutils system message(s) rendered")
    return problems


def run_checks(html_dir: Path, executed_dir: Path, shots_dir: Path, log_path: Path,
               page: str | None = None) -> tuple[list[str], list[Path]]:
    problems: list[str] = []
    shots: list[Path] = []
    index = html_dir / "index.html"
    if not index.is_file():
        return [f"{index} does not exist: build the book first (`make book`)"], shots
    exe = find_chromium()
    problems += check_build_log(log_path)
    for old in shots_dir.glob("*.png") if shots_dir.is_dir() else []:
        old.unlink()  # screenshots of this check only

    # --- landing page
    landing = resolve_redirect(index)
    shots.append(screenshot(exe, landing, shots_dir / "index.png"))
    reader = read_dom(dump_dom(exe, landing))
    problems += check_page_text("index", reader)
    problems += check_pasted("index", reader, expected_headline(executed_dir))

    # --- the method pages' "reference vs this book" tables (DOM only)
    for method_page in book.COMPARISONS:
        page_html = html_dir / "book" / f"{method_page}.html"
        if not page_html.is_file():
            problems.append(f"{page_html} was not built")
            continue
        method_reader = read_dom(dump_dom(exe, page_html))
        problems += check_page_text(method_page, method_reader)
        problems += check_pasted(method_page, method_reader,
                                 expected_comparison(method_page, executed_dir))
    if not book.executed_notebooks(executed_dir):
        print("[check] no executed notebooks: checked the landing page only", file=sys.stderr)
        return problems, shots

    # --- one notebook page: the one asked for, else the first with figures
    candidates = book.executed_notebooks(executed_dir)
    if page:
        chosen = [p for p in candidates if p.stem == page or p.stem.startswith(page)]
        if not chosen:
            return problems + [f"--page {page}: no executed notebook of that name"], shots
        nb_path = chosen[0]
    else:
        with_figures = [p for p in candidates if image_outputs(p)]
        if not with_figures:
            return problems + ["no executed notebook has a figure (image output); "
                               f"looked at {[p.stem for p in candidates]}"], shots
        nb_path = with_figures[0]
    rel = nb_path.relative_to(executed_dir.parent.parent).with_suffix(".html")
    nb_html = html_dir / rel
    if not nb_html.is_file():
        return problems + [f"{nb_html} was not built (is {nb_path.stem} in the toc?)"], shots
    shots.append(screenshot(exe, nb_html, shots_dir / f"{nb_path.stem}.png"))
    reader = read_dom(dump_dom(exe, nb_html))
    # the top of a notebook page is prose and code: also show the section of its first figure
    first_fig = next((sec for src, sec in zip(reader.images, reader.image_sections)
                      if "_images/" in src and sec), None)
    if first_fig:
        shots.append(figure_screenshot(exe, nb_html, first_fig,
                                       shots_dir / f"{nb_path.stem}-figure.png"))
    problems += check_page_text(nb_path.stem, reader, pasted_page=False)
    n_figures = image_outputs(nb_path)
    figure_srcs = [s for s in reader.images if "_images/" in s or s.startswith("data:image")]
    if n_figures == 0:
        problems.append(f"{nb_path.stem}: the executed notebook has no figure")
    if len(figure_srcs) < n_figures:
        problems.append(f"{nb_path.stem}: {n_figures} figure(s) in the notebook but "
                        f"{len(figure_srcs)} <img> on the page")
    for src in figure_srcs:
        if src.startswith("data:"):
            continue
        url = urlparse(src)
        target = Path(unquote(url.path)) if url.scheme == "file" else (nb_html.parent / unquote(url.path))
        if not target.resolve().is_file():
            problems.append(f"{nb_path.stem}: image {src} does not exist")
    return problems, shots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=book.REPO_ROOT,
                    help="the book's source directory (default: the checkout; use the --source "
                         "directory of `python -m toolalpaca_utils.book --source DIR`)")
    ap.add_argument("--html", type=Path, default=None, help="default: ROOT/_build/html")
    ap.add_argument("--executed", type=Path, default=None, help="default: ROOT/book/executed")
    ap.add_argument("--screenshots", type=Path, default=None,
                    help="default: ROOT/_build/screenshots")
    ap.add_argument("--log", type=Path, default=None, help="default: ROOT/_build/book-build.log")
    ap.add_argument("--page", default=None,
                    help="executed notebook to open (default: the first one with figures)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    args.html = args.html or root / "_build" / "html"
    args.executed = args.executed or root / "book" / "executed"
    args.screenshots = args.screenshots or root / "_build" / "screenshots"
    args.log = args.log or root / "_build" / "book-build.log"
    try:
        problems, shots = run_checks(args.html, args.executed, args.screenshots, args.log,
                                     args.page)
    except CheckFailed as exc:
        print(f"[check] FAILED: {exc}", file=sys.stderr)
        return 1
    for s in shots:
        print(f"[check] screenshot {s}", file=sys.stderr)
    if problems:
        print("[check] FAILED:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    n = len(expected_headline(args.executed))
    print(f"[check] OK: {n} headline value(s) rendered, figures present, no glue warnings",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
