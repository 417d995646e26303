"""In which words should a constrained step be written? The student is fine-tuned on ReAct text
(``Thought: …\\nAction: fn\\nAction Input: {…}``); constrained decoding makes it write the same
step as a JSON object (``{"thought", "action", "action_input"}``, llama.cpp's JSON-schema
grammar), a text it never saw. The step grammar (:mod:`toolalpaca_utils.step_grammar`) constrains
the ReAct text itself. Both allow exactly the same calls; this measures which the models use
better, on the same real-tool items, in one invocation.

    python benchmarks/step_format.py [--adapter runs/cpu/training/adapter] [--max-items-real 30]
                                     [--decodings constrained grounded] [--max-steps 3]
                                     [--models base fine-tuned]

The ReAct rows run the same client with each constrained request's schema turned into its
grammar (:func:`toolalpaca_utils.step_grammar.step_grammar`); the JSON rows are the episodes as
the book runs them. 3.8 to 5.7 minutes per model, decoding and step
format at 30 items on 2 cores (measured 2026-12-02). Writes ``benchmarks/results/step_format.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from toolalpaca_utils.evaluation import evaluate, items_from_real, spread_over_tools
from toolalpaca_utils.llm import DEFAULT_MODEL, open_student
from toolalpaca_utils.realtools import serve_realtools
from toolalpaca_utils.runs import runs_root
from toolalpaca_utils.step_grammar import step_grammar

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("well_formed", "api_match", "argument_match", "overall")


class ReactSteps:
    """The client, sent each constrained step's ReAct grammar in place of its JSON schema."""

    def __init__(self, client):
        self.client = client

    def chat(self, messages, **kw):
        if kw.get("schema") is not None:
            kw["grammar"] = step_grammar(kw["schema"])
        return self.client.chat(messages, **kw)

    @property
    def parallelism(self) -> int:
        return self.client.parallelism


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, default=runs_root() / "cpu" / "training" / "adapter")
    ap.add_argument("--max-items-real", type=int, default=30)
    ap.add_argument("--decodings", nargs="+", default=["constrained", "grounded"])
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["base", "fine-tuned"], choices=["base", "fine-tuned"])
    args = ap.parse_args()
    if not args.adapter.is_dir():
        raise SystemExit(f"no adapter at {args.adapter}: run notebook 03 (or pass --adapter)")
    rows = []
    with serve_realtools() as url:
        items, records = items_from_real(url)
        items = spread_over_tools(items, args.max_items_real)
        for model_name, adapter in (("base", None), ("fine-tuned", args.adapter)):
            if model_name not in args.models:
                continue
            with open_student(DEFAULT_MODEL, adapter, name=model_name, replicas=args.replicas,
                              work_dir=RESULTS / "step_format-served") as client:
                for decoding in args.decodings:
                    for step_format, model in (("ReAct text", ReactSteps(client)), ("JSON object", client)):
                        start = time.perf_counter()
                        run = evaluate(model, items, records, name=f"{model_name} · {decoding} · {step_format}",
                                       mode=decoding, max_steps=args.max_steps, tool_choice="required")
                        summary = run.summary()
                        rows.append({"model": model_name, "decoding": decoding, "step format": step_format,
                                     **{m: summary[m] for m in METRICS},
                                     "minutes": round((time.perf_counter() - start) / 60, 1)})
                        print(rows[-1], flush=True)
    print(f"\nreal tools, {len(items)} items ({args.max_items_real} asked), max {args.max_steps} steps; % of items")
    print(f"{'model':<11} {'decoding':<12} {'step format':<12} " + " ".join(f"{m:>15}" for m in METRICS) + "  minutes")
    for r in rows:
        print(f"{r['model']:<11} {r['decoding']:<12} {r['step format']:<12} "
              + " ".join(f"{r[m]:>15}" for m in METRICS) + f"  {r['minutes']:>7}")
    result = {"items": len(items), "adapter": str(args.adapter), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "step_format.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
