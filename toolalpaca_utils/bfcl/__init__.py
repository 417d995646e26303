"""The student on BFCL's AST categories, offline, scored by BFCL's own checker (notebook 07_bfcl).

- :mod:`.install`: ``bfcl-eval`` (pinned) in a folder of its own, outside the book's environment;
- :mod:`.data`: its questions and possible answers, and the seeded subset a profile runs;
- :mod:`.records`: BFCL function docs as the project's tool records;
- :mod:`.decode`: the student's recorded calls in BFCL's decoded form;
- :mod:`.episodes`: one ReAct episode per question, resumable rows per model and decoding;
- :mod:`.checker`: BFCL's ``ast_checker`` on the decoded calls, in a subprocess.
"""
from .checker import CheckerError, check
from .data import CATEGORIES, Question, load, load_category, subset
from .install import BFCL_VERSION, BfclMissingError, ensure_installed, install_dir, require_installed
from .records import record_from_functions
from .score import PUBLISHED_SIMPLE, SUMMARY, score_rows

NOTEBOOK = "07_bfcl"

__all__ = ["BFCL_VERSION", "BfclMissingError", "CATEGORIES", "CheckerError", "NOTEBOOK", "Question", "check",
           "PUBLISHED_SIMPLE", "SUMMARY", "ensure_installed", "install_dir", "load", "load_category", "record_from_functions", "require_installed", "score_rows",
           "subset"]
