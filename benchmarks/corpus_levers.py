"""Corpus levers, one switched off at a time: what each does to the student, in one invocation.

For every condition and seed it simulates a corpus from the cpu toolset (notebook 01's) with the
embedded teacher, trains the student on it with notebook 03's cpu settings (``--steps`` caps the
optimizer steps so every condition trains alike), and evaluates the fine-tuned student on

* the hand-written real-tool set (a fixed, tool-balanced subset: the same items for every run),
* the unseen simulated tools: the eval split of the all-levers corpus of the same seed. The tool
  split depends only on the seed, so every condition holds out the same tools; their instances
  are the all-levers ones for every condition (which favours the all-levers requests' style:
  the real-tool set is the neutral yardstick).

    python benchmarks/corpus_levers.py [--seeds 0 1] [--tools 0] [--per-tool 12] [--steps 120]
                                       [--real 30] [--simulated 21] [--decoding constrained]
                                       [--tool-choice required auto] [--from-book]

With ``--from-book`` the all-levers condition is the cpu book's own run (notebooks 02 and 03), so
a quick ablation of the code-written tools is one training run:
``python benchmarks/corpus_levers.py --from-book --seeds 0 --steps 0 --per-tool 8
--conditions "all levers" "teacher's tools only" --tool-choice required auto``.

Every stage resumes (corpus rows, the training run, evaluation rows) under ``--out``
(default ``runs/levers``), so an interrupted benchmark continues where it stopped. Nothing here
is tuned on: the table (with each condition's corpus-quality figures, notebook 02's report) is
printed, and written to ``benchmarks/results/corpus_levers.json``; each
condition's paired comparison with 'all levers' (the same items, every seed pooled, McNemar's exact
test) to ``corpus_levers_paired.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from toolalpaca_utils.evaluation import evaluate_grid, items_from_corpus, items_from_real, spread_over_tools
from toolalpaca_utils.llm import open_chat
from toolalpaca_utils.quality import corpus_quality
from toolalpaca_utils.realtools import serve_realtools
from toolalpaca_utils.runs import hash_path, require_stage, reset_if_inputs_changed
from toolalpaca_utils.simulation import SimulationConfig, simulate
from toolalpaca_utils.tools import load_toolset
from toolalpaca_utils.training.run import profile_parameters, run_training

HERE = Path(__file__).resolve().parent
CONDITIONS = {  # name: the SimulationConfig fields that switch one lever off
    "all levers": {},
    "values by the teacher": {"values": "teacher"},
    "one request template": {"request_fallback": "template"},
    "responses by the teacher": {"executor": "llm"},
    "answers unchecked": {"answers": "teacher"},
    "teacher's tools only": {},  # the all-levers corpus without the tools written by code (training split)
}
DROP_SOURCE = {"teacher's tools only": "blueprint"}
BOOK_SEED = 0  # notebooks/profiles/cpu.yaml common.seed: the seed of the book run --from-book stands in for
METRICS = ("well_formed", "api_match", "argument_match", "overall")
# what a lever does to the corpus itself (toolalpaca_utils.quality, notebook 02's report), next to the student
QUALITY = ("description_fragment_values", "values_in_request_pct", "answers_quoting_observation_pct",
           "status_line_answers", "largest_frame_share_pct")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--tools", type=int, default=0, help="teacher-written catalogue tools to simulate, next to every "
                    "tool written by code (0: all of the toolset)")
    ap.add_argument("--per-tool", type=int, default=12, help="instances per tool")
    ap.add_argument("--eval-tools", type=int, default=7, help="tools held out (unseen simulated set)")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps per training run")
    ap.add_argument("--real", type=int, default=30, help="real-tool items (tool-balanced subset)")
    ap.add_argument("--simulated", type=int, default=21, help="unseen simulated items")
    ap.add_argument("--decoding", nargs="+", default=["constrained"], choices=["free", "constrained", "grounded"])
    ap.add_argument("--tool-choice", nargs="+", default=["required"], choices=["auto", "required"],
                    help="constrained decoding's first step (the cpu profile's 04 setting: required)")
    ap.add_argument("--from-book", action="store_true",
                    help="'all levers' of seed 0 is the cpu book's own corpus and adapter (notebooks 02 and 03): "
                         "nothing simulated or trained again for it; other seeds simulate and train their own")
    ap.add_argument("--out", type=Path, default=Path("runs/levers"))
    return ap.parse_args()


def _book_run(args, condition: str, seed: int) -> bool:
    """The cpu book's own run stands for 'all levers' of its seed (the profile's: 0) only."""
    return args.from_book and condition == "all levers" and seed == BOOK_SEED


def corpus(teacher, tools: list[dict], args, condition: str, seed: int) -> Path:
    if _book_run(args, condition, seed):
        return require_stage("cpu", "simulation")
    if condition in DROP_SOURCE:  # same tools, same split: the training rows of the other tools only
        return without_source(corpus(teacher, tools, args, "all levers", seed), DROP_SOURCE[condition],
                              args.out / f"seed{seed}" / _slug(condition) / "corpus")
    out = args.out / f"seed{seed}" / _slug(condition) / "corpus"
    cfg = SimulationConfig(instructions_per_tool=args.per_tool, n_eval_tools=args.eval_tools, seed=seed,
                           **CONDITIONS[condition])
    simulate(teacher, tools, cfg, out_dir=out, progress=False)
    return out


def _slug(condition: str) -> str:
    return condition.replace(" ", "-").replace("'", "")


def without_source(corpus_dir: Path, source: str, out: Path) -> Path:
    """A copy of ``corpus_dir`` whose train split leaves out the tools of ``source``."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    dropped = {t["Name"] for t in json.loads((corpus_dir / "tools.json").read_text()) if t.get("source") == source}
    for name in ("tools.json", "eval.jsonl", "rejects.jsonl"):
        if (corpus_dir / name).exists():
            shutil.copy(corpus_dir / name, out / name)
    rows = [line for line in (corpus_dir / "train.jsonl").read_text().splitlines()
            if line.strip() and json.loads(line)["tool"] not in dropped]
    (out / "train.jsonl").write_text("\n".join(rows) + "\n")
    return out


def train(corpus_dir: Path, args, seed: int, condition: str) -> Path:
    if _book_run(args, condition, seed):
        return require_stage("cpu", "training") / "adapter"
    params = {**profile_parameters("cpu"), "max_steps": args.steps, "seed": seed}
    result = run_training("cpu", corpus=corpus_dir, out=corpus_dir.parent / "training", **params)
    return Path(result.adapter_dir)


def run_one(teacher, tools, real_set, args, condition: str, seed: int) -> list[dict]:
    started, where = time.perf_counter(), args.out / f"seed{seed}" / _slug(condition)
    timed = not where.exists() or (where / "seconds.json").exists()  # begun before runs were timed: unknown
    corpus_dir = corpus(teacher, tools, args, condition, seed)
    shared = corpus(teacher, tools, args, "all levers", seed)  # the same unseen simulated items for all
    adapter = train(corpus_dir, args, seed, condition)
    sim_items, sim_records = items_from_corpus(shared)
    sets = {"real": real_set, "simulated": (spread_over_tools(sim_items, args.simulated), sim_records)}
    rows = []
    for choice in args.tool_choice:
        out_dir = where / f"evaluation-{choice}"
        # rows resume only for the same adapter, items and settings (--from-book's adapter is the
        # book's latest: a new book run must not meet the rows of the old one)
        reset_if_inputs_changed(out_dir, {"adapter": hash_path(adapter), "simulated": hash_path(shared / "eval.jsonl"),
                                          "real": args.real, "n_simulated": args.simulated,
                                          "decoding": args.decoding, "tool_choice": choice})
        runs, _ = evaluate_grid("smollm2-135m-instruct", {"fine-tuned": adapter}, sets,
                                out_dir=out_dir, teacher=teacher, decodings=args.decoding,
                                progress=False, replicas=2, tool_choice=choice)
        rows += [{"condition": condition, "seed": seed, "set": set_name, "decoding": run.name.split(" · ")[1],
                  "tool_choice": choice, **{m: run.summary()[m] for m in METRICS}} for set_name, run in runs]
    minutes = _minutes(where, time.perf_counter() - started) if timed else None
    quality = corpus_quality(corpus_dir)
    return [{**r, **{f"corpus {q}": quality[q] for q in QUALITY}, "minutes": minutes} for r in rows]


def _minutes(where: Path, seconds: float) -> float:
    """The run's wall time over all the invocations that worked on it (kept in ``where``), so a
    resumed run reports what it cost, not the seconds it took to read itself back. A run begun
    before this bookkeeping reports None (not known), never its read-back time."""
    path = where / "seconds.json"
    spent = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
    where.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": spent + seconds}))
    return round((spent + seconds) / 60, 1)


def main() -> None:
    args = parse_args()
    tools = [t for t in load_toolset(require_stage("cpu", "toolset")) if t.get("source") != "real"]
    by_teacher = [t for t in tools if t.get("source") != "blueprint"]
    tools = (by_teacher[:args.tools] if args.tools else by_teacher) + [t for t in tools if t.get("source") == "blueprint"]
    rows = []
    with serve_realtools() as url, open_chat("embedded", "smollm2-135m-instruct", replicas=2,
                                              cache_dir=args.out / "llm-cache") as teacher:
        items, records = items_from_real(url)
        real_set = (spread_over_tools(items, args.real), records)
        for condition in args.conditions:  # a condition's seeds together: an interrupted run has whole conditions
            for seed in args.seeds:
                rows += run_one(teacher, tools, real_set, args, condition, seed)
                print(json.dumps(rows[-1]), flush=True)
                paired = write_results(rows, args)  # after every run: an interrupted benchmark keeps its table
    report(rows, paired)


def write_results(rows: list[dict], args) -> list[dict]:
    """The rows so far, and each condition against all levers (:func:`paired_rows`), as JSON."""
    paired = paired_rows(rows, args)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "corpus_levers.json").write_text(json.dumps(rows, indent=1))
    (HERE / "results" / "corpus_levers_paired.json").write_text(json.dumps(paired, indent=1))
    return paired


def report(rows: list[dict], paired: list[dict]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    table = frame.groupby(["set", "decoding", "tool_choice", "condition"])[list(METRICS)].agg(["mean", "std"]).round(1)
    print(table.to_string())
    if paired:
        print(pd.DataFrame(paired).drop(columns=["a 95% interval", "b 95% interval"]).to_string())


def paired_rows(rows: list[dict], args) -> list[dict]:
    """'all levers' → each other condition on the same items, the items of every seed pooled:
    McNemar's exact test per metric (:func:`toolalpaca_utils.stats.compare_runs`), Holm-corrected
    over the conditions of each set, decoding and metric."""
    from toolalpaca_utils.stats import compare_runs, corrected

    baseline = {(r["seed"], r["set"], r["decoding"], r["tool_choice"]) for r in rows if r["condition"] == "all levers"}
    groups: dict[tuple, list[int]] = {}
    for r in rows:
        if r["condition"] != "all levers" and (r["seed"], r["set"], r["decoding"], r["tool_choice"]) in baseline:
            groups.setdefault((r["set"], r["decoding"], r["tool_choice"], r["condition"]), []).append(r["seed"])
    out = []
    for (set_name, decoding, choice, condition), seeds in groups.items():
        a, b = ([row for seed in seeds for row in _item_rows(args, seed, c, set_name, decoding, choice)]
                for c in ("all levers", condition))
        out += [{"set": set_name, "decoding": decoding, "tool_choice": choice, "comparison": f"all levers → {condition}",
                 "seeds": len(seeds), "metric": m, **compare_runs(a, b, m)} for m in METRICS[1:]]
    return corrected(out, family=("set", "decoding", "tool_choice", "metric"))


def _item_rows(args, seed: int, condition: str, set_name: str, decoding: str, choice: str) -> list[dict]:
    """The fine-tuned student's evaluation rows of one run, ids made unique across seeds."""
    where = args.out / f"seed{seed}" / _slug(condition) / f"evaluation-{choice}"
    path = where / f"fine-tuned-{decoding}-{set_name}.jsonl"
    return [{**r, "id": f"seed{seed}/{r['id']}"} for r in map(json.loads, path.read_text().splitlines())]


if __name__ == "__main__":
    main()
