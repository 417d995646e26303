"""Running the notebooks: papermill execution in a kernel of this interpreter, and failures.

Owns choosing the notebooks to run (:func:`select_notebooks`), the kernel (:func:`kernel_name`),
executing them in order (:func:`run_notebooks`) and the message that names the failing notebook
and cell (:class:`NotebookFailed`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from toolalpaca_utils.book.pages import _fmt_duration, notebook_timing, write_generated_pages
from toolalpaca_utils.book.paths import (
    BUILD_DIR, EXECUTED_DIR, NOTEBOOK_GLOB, NOTEBOOKS_DIR, PRIVATE_KERNEL, REPO_ROOT, discover_notebooks,
    executed_notebooks,
)
from toolalpaca_utils.profiles import PROFILES, load_profile

log = logging.getLogger("toolalpaca_utils.book")


def select_notebooks(notebooks: Sequence[Path], only: Iterable[str] | None) -> list[Path]:
    """Filter ``notebooks`` to the stems (or numeric prefixes, e.g. ``01``) listed in ``only``."""
    if not only:
        return list(notebooks)
    wanted = [w.strip().removesuffix(".ipynb") for w in only if w.strip()]
    chosen: list[Path] = []
    for w in wanted:
        matches = [p for p in notebooks if p.stem == w or p.stem.split("_", 1)[0] == w]
        if not matches:
            have = ", ".join(p.stem for p in notebooks) or "none"
            raise SystemExit(f"--only {w!r}: no such notebook in notebooks/ (have: {have})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""

    def __init__(self, message: str, *, notebook: str, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None,
                 output_path: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        self.output_path = output_path


def kernel_name() -> str:
    """A kernel that runs this interpreter (the venv's python).

    The stock ``python3`` spec qualifies when its command is a bare ``python``/``python3``
    (jupyter_client swaps in ``sys.executable``) or this very interpreter. If something else
    (e.g. a user-wide spec for another Python) shadows it, a private spec under
    ``_build/jupyter`` is put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
        if argv0 in bare or os.path.abspath(argv0) == os.path.abspath(sys.executable):
            return "python3"
    except NoSuchKernel:
        pass
    root = BUILD_DIR / "jupyter"
    spec_dir = root / "kernels" / PRIVATE_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (toolalpaca book)", "language": "python",
    }, indent=1))
    paths = [str(root)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)
    return PRIVATE_KERNEL


def _failure_message(src: Path, out: Path, profile: str, exc: BaseException) -> NotebookFailed:
    """Name the notebook and the failing cell (as numbered in the *source* notebook)."""
    from papermill.exceptions import PapermillExecutionError

    stem = src.stem
    cell_no = None
    where = "an unknown cell"
    first_line = ""
    ename = type(exc).__name__
    text_lines = str(exc).strip().splitlines()
    evalue = text_lines[-1] if text_lines else ""
    try:
        nb = nbformat.read(str(out), as_version=4)
        cells = [c for c in nb.cells
                 if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    except Exception:  # noqa: BLE001 - the output may not exist if the kernel never started
        cells = []
    index = None
    if isinstance(exc, PapermillExecutionError):
        index, ename, evalue = exc.cell_index, exc.ename, exc.evalue
        exec_count = exc.exec_count
    else:
        exec_count = None
        for i, c in enumerate(cells):
            if c.get("metadata", {}).get("papermill", {}).get("status") in ("failed", "running"):
                index, exec_count = i, c.get("execution_count")
                break
    if index is not None:
        injected = sum(1 for c in cells[:index]
                       if "injected-parameters" in c.get("metadata", {}).get("tags", []))
        cell_no = index - injected + 1
        where = f"cell {cell_no}" + (f" (In [{exec_count}])" if exec_count else "")
        if index < len(cells):
            src_lines = [ln for ln in cells[index].source.splitlines() if ln.strip()]
            first_line = src_lines[0][:100] if src_lines else ""
    try:
        shown = src.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = src
    msg = (
        f"notebook {stem} failed in {where} of {shown}: {ename}: {evalue}\n"
        + (f"  cell starts with: {first_line}\n" if first_line else "")
        + (f"  the partly executed notebook (with the traceback) is kept: {out}\n"
           if out.exists() else "  no output notebook was written\n")
        + "  notebooks that ran before it are kept in the same folder; re-run only this one with\n"
        + f"  python -m toolalpaca_utils.book --profile {profile} --only {stem}"
    )
    return NotebookFailed(msg, notebook=stem, cell=cell_no, ename=ename, evalue=evalue,
                          output_path=out)


def run_notebooks(
    profile: str,
    notebooks: Sequence[Path | str] | None = None,
    out_dir: Path | str = EXECUTED_DIR,
    log_output: bool = True,
    progress_bar: bool = True,
    clean: bool | None = None,
    overrides: dict | None = None,
) -> list[dict]:
    """Execute ``notebooks`` (default: all numbered ones) in order with papermill.

    Returns the timing records of the notebooks run. On the first failure raises
    :class:`NotebookFailed` after writing the timing table, so what ran is kept and visible.
    ``clean`` (default: True when running all notebooks) first removes executed notebooks left
    over from an earlier run, so the book never mixes runs. ``overrides`` (parameter values, e.g.
    from a stage's command line) win over the profile's, in every notebook that has them.
    """
    import papermill as pm

    if profile not in PROFILES:
        load_profile(profile)  # raises a clear FileNotFoundError for an unknown profile
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_run = notebooks is None
    paths = [Path(p) for p in (notebooks if notebooks is not None else discover_notebooks())]
    if clean if clean is not None else all_run:
        for old in executed_notebooks(out_dir):
            old.unlink()
    if not paths:
        log.warning("[book] no notebooks matching notebooks/%s; nothing to run", NOTEBOOK_GLOB)
    kernel = kernel_name()
    runs_env = os.environ.get("TOOLALPACA_RUNS")
    results = []
    for i, src in enumerate(paths, 1):
        params = load_profile(profile, src.stem)
        params.update({k: v for k, v in (overrides or {}).items() if k in params})
        out = out_dir / src.name
        print(f"[book] ({i}/{len(paths)}) {src.stem}: profile {profile}, "
              f"runs in {runs_env or REPO_ROOT / 'runs'} -> {out}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(src), str(out), parameters=params, kernel_name=kernel, language="python",
                progress_bar=progress_bar, log_output=log_output, cwd=str(src.parent),
            )
        except Exception as exc:  # papermill errors, dead kernels, timeouts
            failure = _failure_message(src, out, profile, exc)
            if out.exists():
                write_generated_pages(out_dir)
            raise failure from exc
        t = notebook_timing(out)
        print(f"[book] {src.stem} done in {_fmt_duration(t['duration_s'])} "
              f"(wall {time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        results.append(t)
    write_generated_pages(out_dir)
    return results


def run_stage(notebook: str, argv: Sequence[str] | None = None) -> int:
    """``python -m toolalpaca_utils.<stage> --profile NAME [--key value ...]``: run one notebook
    headless with its profile's values and the flags (:func:`toolalpaca_utils.params.parse_stage_args`);
    the executed copy lands in ``book/executed/`` like the book's."""
    import dataclasses

    from toolalpaca_utils.params import parse_stage_args

    (params,) = parse_stage_args(notebook, argv)
    try:
        run_notebooks(params.profile, [NOTEBOOKS_DIR / f"{notebook}.ipynb"], clean=False,
                      overrides=dataclasses.asdict(params))
    except NotebookFailed as exc:
        print(f"[{notebook}] STOPPED: {exc}", file=sys.stderr)
        return 1
    return 0
