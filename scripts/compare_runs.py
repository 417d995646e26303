"""Compare two tiny-book runs: toolset, corpus files, evaluation rows and glued numbers.

A behaviour-preserving change must leave these identical (timing fields aside). Usage::

    TOOLALPACA_RUNS=/tmp/a python -m toolalpaca_utils.book --profile tiny --no-build   # before
    TOOLALPACA_RUNS=/tmp/b python -m toolalpaca_utils.book --profile tiny --no-build   # after
    python scripts/compare_runs.py RUNS_A RUNS_B EXECUTED_A EXECUTED_B

(EXECUTED_* are the ``book/executed`` folders the two runs wrote.) Exit status 1 if anything differs.
"""
import json, sys
from pathlib import Path
import nbformat

VOLATILE = {"seconds", "wall_seconds", "tokens_per_s", "minutes", "cpu_seconds", "created", "duration_s", "time",
            "elapsed", "started", "finished", "timestamp", "log_path", "out_dir", "adapter_dir", "path", "settings"}

def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x

def jsonl(p):
    return [strip(json.loads(l)) for l in Path(p).read_text().splitlines() if l.strip()] if Path(p).exists() else None

def glue(p):
    from toolalpaca_utils.book import glued_keys
    return {k: v for k, v in glued_keys(p).items() if "minutes" not in k and "tokens_per_s" not in k and "rss" not in k}

a, b, ea, eb = map(Path, sys.argv[1:5])
ok = True
for rel in ["toolset/toolalpaca_tools.json", "simulation/train.jsonl", "simulation/eval.jsonl", "simulation/rejects.jsonl",
            "simulation/tools.json", "evaluation/base-simulated.jsonl", "evaluation/base-real.jsonl",
            "evaluation/fine-tuned-simulated.jsonl", "evaluation/fine-tuned-real.jsonl"]:
    pa, pb = a / "tiny" / rel, b / "tiny" / rel
    if rel.endswith(".jsonl"):
        xa, xb = jsonl(pa), jsonl(pb)
    else:
        xa = strip(json.loads(pa.read_text())) if pa.exists() else None
        xb = strip(json.loads(pb.read_text())) if pb.exists() else None
    same = xa == xb
    ok &= same
    n = len(xa) if isinstance(xa, list) else "-"
    print(f"{'identical' if same else 'DIFFERENT':10s} {rel} ({n} rows)")
for nb in sorted(ea.glob("0*.ipynb")):
    ga, gb = glue(nb), glue(eb / nb.name)
    same = ga == gb
    ok &= same
    print(f"{'identical' if same else 'DIFFERENT':10s} glued numbers of {nb.stem}: {ga if nb.stem=='04_evaluation' else len(ga)}")
    if not same:
        for k in sorted(set(ga) | set(gb)):
            if ga.get(k) != gb.get(k):
                print(f"    {k}: {ga.get(k)} vs {gb.get(k)}")
print("ALL IDENTICAL" if ok else "SOME DIFFER")
sys.exit(0 if ok else 1)
