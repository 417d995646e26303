"""Run as a script by :mod:`toolalpaca_utils.bfcl.checker`, never imported by the book: BFCL's own
checker decides each item. stdin: ``{"install", "model_name", "items": [{"id", "category",
"function", "decoded", "answer"}]}``; stdout: ``{"verdicts": [...], "summary": {...}}``.

Only the standard library and the ``bfcl_eval`` folder are imported here (plus numpy/pandas,
which BFCL's score helper imports at module level). One module of BFCL is replaced before import:
``bfcl_eval.constants.model_config``, which imports every client SDK only to build a table of
model names; the AST checker reads one flag of that table (``underscore_to_dot``: rename dotted
function names for APIs that forbid dots), which is False for a model that writes names as given.
"""
import json
import os
import sys
import tempfile
import types


class _Config:
    underscore_to_dot = False  # the student writes BFCL's dotted names as they are


class _AnyModel(dict):
    def __missing__(self, key):
        return _Config()


def _import_bfcl(install: str, root: str):
    sys.path.insert(0, install)
    # BFCL creates result/score/lock folders under its project root when imported: a scratch one
    os.environ["BFCL_PROJECT_ROOT"] = root
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.eval_checker.eval_runner_helper import calculate_unweighted_accuracy
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output
    return Language, ast_checker, calculate_unweighted_accuracy, is_empty_output, is_function_calling_format_output


def main() -> None:
    request = json.load(sys.stdin)
    with tempfile.TemporaryDirectory(prefix="bfcl-root-") as root:  # removed when the verdicts are out
        json.dump(_verdicts(request, root), sys.stdout)


def _verdicts(request: dict, root: str) -> dict:
    Language, ast_checker, unweighted, is_empty, is_call_format = _import_bfcl(request["install"], root)
    verdicts = []
    for item in request["items"]:
        decoded, category = item["decoded"], item["category"]
        if "irrelevance" in category:  # as BFCL's relevance runner: right when nothing was called
            ok = is_empty(decoded)
            verdict = {"valid": ok, "error": [] if ok else ["a function was called"],
                       "error_type": "" if ok else "irrelevance_error:decoder_success"}
        elif not is_call_format(decoded):  # as BFCL's AST runner, before the checker
            verdict = {"valid": False, "error": ["no function call in the expected format"],
                       "error_type": "ast_decoder:decoder_wrong_output_format"}
        else:
            try:
                verdict = ast_checker(item["function"], decoded, item["answer"], Language.PYTHON, category,
                                      request["model_name"])
            except Exception as exc:  # a value the checker cannot compare: wrong, and the run goes on
                verdict = {"valid": False, "error": [f"BFCL's checker raised {type(exc).__name__}: {exc}"],
                           "error_type": "checker_exception"}
        verdicts.append({"id": item["id"], "valid": bool(verdict["valid"]), "error": verdict.get("error", []),
                         "error_type": verdict.get("error_type", "")})
    return {"verdicts": verdicts, "summary": _summary(request, verdicts, unweighted)}


def _summary(request: dict, verdicts: list, unweighted) -> dict:
    """BFCL's non-live AST summary: its unweighted mean over simple, multiple, parallel and
    parallel_multiple (computed by BFCL's own helper), over the categories that were run."""
    by_category = {}
    for item, verdict in zip(request["items"], verdicts):
        by_category.setdefault(item["category"], []).append(verdict["valid"])
    scores = {c: {"accuracy": sum(v) / len(v), "total_count": len(v), "display_accuracy": sum(v) / len(v)}
              for c, v in by_category.items()}
    ast = [scores[c] for c in ("simple_python", "multiple", "parallel", "parallel_multiple") if c in scores]
    summary = {c: s["accuracy"] for c, s in scores.items()}
    if ast:
        summary["non_live_ast_summary"] = unweighted(ast)["accuracy"]
    return summary


if __name__ == "__main__":
    main()
