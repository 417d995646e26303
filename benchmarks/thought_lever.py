"""The thought before the first call: what the student learns to write before it names a function.

The cpu corpus's first call is written by code (call-first), and so is its thought
(:func:`toolalpaca_utils.agents.episode.call_thought`). This benchmark trains the student on the
cpu book's own corpus (notebook 02) with that thought rewritten, one variant at a time, with
notebook 03's settings, and evaluates each adapter on the hand-written real tools and the unseen
simulated tools, constrained and grounded (tool_choice "required", as notebook 04):

* ``names``: "I need to call <name> with the details from the request." (the corpus before
  2026-12-07): the name is chosen in the free-text thought, where a 135M model invents names
* ``summary``: "The request needs this: <the function's summary>" (the corpus since): the function
  is chosen by copying the documentation line that fits the request; its name is then decided
  under the grammar (``action`` is a const of the step schema)
* ``fixed``: one name-free sentence for every call: the name is decided under the grammar only

    python benchmarks/thought_lever.py [--variants names summary fixed] [--out runs/thought]
                                       [--thought free|documented] [--corpus DIR]

Only the first step of each training instance is rewritten (the evaluation sets are the book's).
About 23 minutes a variant on 2 cores (training 13, evaluation 10). Measured 2026-12-07 (cpu, seed
0; the names row then was notebook 03's own adapter, trained on that corpus as written): summary
against names, unseen simulated overall 19.0 -> 42.9 (constrained and grounded), real grounded
10.0 -> 20.0, real constrained 10.0 both; fixed fell to 3.3 / 6.7 real (see the Performance page).
The corpus regenerated with the summary thought (``--variants summary --out runs/thought_book``):
simulated 38.1, real 10.0. Every run resumes under ``--out``; the table is printed and written to
``benchmarks/results/thought_lever.json`` (the rows of the variants run replace their earlier ones).

``--thought documented`` decodes the same adapters with every thought bound to one of the corpus's
lines (a call's documentation line, the answer's fixed thought; notebook 04's ``thought``), into
``<out>/<variant>/evaluation-documented``, and tests it item by item against free thoughts
(``benchmarks/results/thought_decoding_paired.json``). Measured 2026-12-07 on the regenerated
corpus's adapter (``--variants summary --out runs/thought_book``, 9 minutes): API match real 36.7 ->
50.0, unseen simulated 47.6 -> 71.4 constrained (p 0.06) and 52.4 -> 71.4 grounded; overall real
grounded 10.0 -> 16.7, simulated grounded 38.1 -> 42.9, constrained unchanged (10.0, 38.1). Seed 1
(``--seed 1 --out runs/thought_book_s1``, 29 minutes with training): API match real 46.7 both ways,
simulated 52.4 -> 66.7 constrained, 57.1 -> 66.7 grounded; overall real 6.7 -> 13.3 constrained and
10.0 -> 16.7 grounded, simulated 38.1 -> 42.9 constrained, 42.9 both grounded
(``thought_decoding_paired_thought_book_s1.json``; no single gap beyond noise on 21-30 items).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from toolalpaca_utils.agents.episode import NAMED_THOUGHT, call_thought
from toolalpaca_utils.evaluation import evaluate_grid, items_from_corpus, items_from_real, spread_over_tools
from toolalpaca_utils.llm import open_chat
from toolalpaca_utils.react import format_action
from toolalpaca_utils.realtools import serve_realtools
from toolalpaca_utils.runs import require_stage
from toolalpaca_utils.training.run import profile_parameters, run_training

HERE = Path(__file__).resolve().parent
FIXED = "I will call the function whose description fits the request."
METRICS = ("well_formed", "api_match", "argument_match", "overall")


def thought(variant: str, record: dict, name: str) -> str:
    if variant == "fixed":
        return FIXED
    if variant == "summary":
        return call_thought(record, name)
    return NAMED_THOUGHT.format(name=name)


def rewrite(corpus_dir: Path, variant: str, out: Path) -> Path:
    """A copy of ``corpus_dir`` whose training instances carry ``variant``'s first-call thought."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tools.json", "eval.jsonl"):
        shutil.copy(corpus_dir / name, out / name)
    records = {t["Name"]: t for t in json.loads((corpus_dir / "tools.json").read_text())}
    rows = []
    for line in (corpus_dir / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        step = (row.get("steps") or [{}])[0]  # call-first: the first step is the call code wrote
        if step.get("action"):
            step["thought"] = thought(variant, records[row["tool"]], step["action"])
            step["text"] = format_action(step["thought"], step["action"], step["action_input"])
        rows.append(json.dumps(row, ensure_ascii=False))
    (out / "train.jsonl").write_text("\n".join(rows) + "\n")
    return out


def spent_minutes(where: Path, decoded_thought: str, minutes: float) -> float:
    """The minutes spent on a variant's training and evaluation over every invocation (kept in
    ``<out>/<variant>/minutes-<thought>.json``): a rerun that resumes finished work adds only the
    little it did, rather than reporting its own few seconds as the variant's cost."""
    path = where / f"minutes-{decoded_thought}.json"
    total = (json.loads(path.read_text()) if path.exists() else 0.0) + minutes
    path.write_text(json.dumps(total))
    return round(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["names", "summary", "fixed"], choices=["names", "summary", "fixed"])
    ap.add_argument("--decoding", nargs="+", default=["constrained", "grounded"])
    ap.add_argument("--thought", default="free", choices=["free", "documented"],
                    help="decoding's thought before a call: free | documented (bound to the function's own line)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (the corpus and the evaluation sets stay)")
    ap.add_argument("--out", type=Path, default=Path("runs/thought"))
    ap.add_argument("--corpus", type=Path, default=None,
                    help="a corpus folder (default: the cpu book's, runs/cpu/simulation); its eval.jsonl is the "
                         "simulated set, so pin its eval_tools (notebook 02) to compare with the book's")
    args = ap.parse_args()
    book = args.corpus or require_stage("cpu", "simulation")
    if not (book / "train.jsonl").is_file():
        raise SystemExit(f"{book} holds no corpus (train.jsonl): run notebook 02 into it first")
    sim_items, sim_records = items_from_corpus(book)
    rows = []
    with serve_realtools() as url, open_chat("embedded", "smollm2-135m-instruct", replicas=2,
                                              cache_dir=args.out / "llm-cache") as teacher:
        items, records = items_from_real(url)
        sets = {"real": (spread_over_tools(items, 30), records),
                "simulated": (spread_over_tools(sim_items, 21), sim_records)}
        for variant in args.variants:
            started, where = time.perf_counter(), args.out / variant
            result = run_training("cpu", corpus=rewrite(book, variant, where / "corpus"), out=where / "training",
                                  **{**profile_parameters("cpu"), "seed": args.seed})
            adapter = Path(result.adapter_dir)
            runs, _ = evaluate_grid("smollm2-135m-instruct", {"fine-tuned": adapter}, sets,
                                    out_dir=where / evaluation_dir(args.thought), teacher=teacher,
                                    decodings=args.decoding, progress=False, replicas=2, tool_choice="required",
                                    thought=args.thought)
            minutes = spent_minutes(where, args.thought, (time.perf_counter() - started) / 60)
            for set_name, run in runs:
                rows.append({"variant": variant, "set": set_name, "decoding": run.name.split(" · ")[1],
                             "decoded_thought": args.thought, "run": args.out.name, "seed": args.seed,
                             **{m: run.summary()[m] for m in METRICS}, "minutes": minutes})
                print(json.dumps(rows[-1]), flush=True)
            write_rows(rows, args.variants, args.thought, args.out.name)
    import pandas as pd

    print(pd.DataFrame(rows).set_index(["set", "decoding", "variant"]).sort_index().to_string())
    if "names" in args.variants and args.thought == "free":
        paired = paired_rows(args)
        (HERE / "results" / "thought_lever_paired.json").write_text(json.dumps(paired, indent=1))
        print(pd.DataFrame(paired).drop(columns=["a 95% interval", "b 95% interval"], errors="ignore").to_string())
    if args.thought != "free":  # the same adapters decoded both ways, item by item
        missing = [v for v in args.variants if not (args.out / v / evaluation_dir("free")).is_dir()]
        if missing:
            print(f"no paired table: {missing} not decoded with free thoughts yet (run again without --thought)")
            return
        paired = paired_rows(args, versus="free")
        name = "thought_decoding_paired.json" if args.out.name == "thought_book" else f"thought_decoding_paired_{args.out.name}.json"
        (HERE / "results" / name).write_text(json.dumps(paired, indent=1))
        print(pd.DataFrame(paired).drop(columns=["a 95% interval", "b 95% interval"], errors="ignore").to_string())


def evaluation_dir(decoded_thought: str) -> str:
    return "evaluation" if decoded_thought == "free" else f"evaluation-{decoded_thought}"


def write_rows(rows: list[dict], variants: list[str], decoded_thought: str, run: str) -> None:
    """This run's rows in place of the earlier rows of its variants decoded so under the same
    ``--out`` (a one-variant run keeps the rest)."""
    path = HERE / "results" / "thought_lever.json"
    path.parent.mkdir(exist_ok=True)
    earlier = json.loads(path.read_text()) if path.exists() else []
    kept = [r for r in earlier if r.get("variant") not in variants or r.get("run", "thought") != run
            or r.get("decoded_thought", "free") != decoded_thought]
    path.write_text(json.dumps(kept + rows, indent=1))


def paired_rows(args, versus: str | None = None) -> list[dict]:
    """'names' -> each other variant on the same items, or (``versus`` a decoded thought) each
    variant decoded so -> decoded with ``args.thought``: McNemar's exact test per metric."""
    from toolalpaca_utils.stats import compare_runs

    def rows_of(variant: str, decoded: str, decoding: str, set_name: str) -> list[dict]:
        path = args.out / variant / evaluation_dir(decoded) / f"fine-tuned-{decoding}-{set_name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    pairs = ([((v, versus), (v, args.thought)) for v in args.variants] if versus else
             [(("names", "free"), (v, "free")) for v in args.variants if v != "names"])
    out = []
    for (va, da), (vb, db) in pairs:
        for decoding in args.decoding:
            for set_name in ("real", "simulated"):
                a, b = rows_of(va, da, decoding, set_name), rows_of(vb, db, decoding, set_name)
                name = f"{va} -> {vb}" if va != vb else f"{va}: decoded {da} -> {db}"
                out += [{"comparison": name, "set": set_name, "decoding": decoding, "metric": m,
                         **compare_runs(a, b, m)} for m in METRICS[1:]]
    return out


if __name__ == "__main__":
    main()
