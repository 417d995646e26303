"""Which sibling does the student pick? Function choice measured apart from the arguments, on
requests that are not the real-tool test set.

Most of the fine-tuned student's misses on the real tools are a sibling of the right function
(``searchCountries`` for ``getCountry``). This benchmark asks whether that is a decoding problem or
a learning problem. For every request of a tool with two or more functions, it scores each
function's documented first step (constrained decoding's JSON step, ``{"thought": <the function's
documentation line>, "action": <name>``) under the student, in-process with llama.cpp and the
same GGUF LoRA the book serves, and compares five ways of choosing:

- greedy: what grammar-constrained greedy decoding picks (token by token, where the candidates
  part, the likelier token; emulated from the same log-probabilities);
- sum, per token, per character: the candidate of the highest total log-probability, and that
  total over its tokens or characters (ranked classification, as multiple-choice benchmarks do);
- retrieval: not the student at all: all-MiniLM-L6-v2 picks the documentation line closest to
  the request (:class:`toolalpaca_utils.function_retrieval.FunctionRetriever`, decoding
  "retrieved").

Two sets, neither the real tools (a test set: never tuned on):

- held-out: the training requests notebook 03 held out (``eval_fraction``, seeded as training
  splits them): tools the student has seen, requests it has not;
- unseen simulated: notebook 04's simulated set (3 a tool).

    python benchmarks/function_choice.py --corpus runs/cpu/simulation \
        --adapter base=none fine-tuned=runs/cpu/training/adapter

About 2 minutes a student on 2 cores. Measured 2026-12-07 (cpu corpus, seed 0; the adapter that
``benchmarks/thought_lever.py --out runs/thought_book`` trains, its epoch-1 checkpoint, and the
same training with ``epochs: 4``), % of the 39 held-out and 15 unseen multi-function requests:

    student     set        greedy   sum  per token  per char  retrieval
    base        held-out     48.7  33.3       51.3      43.6       82.1
    1 epoch     held-out     51.3  53.8       41.0      41.0       82.1
    2 epochs    held-out     59.0  61.5       43.6      51.3       82.1
    4 epochs    held-out     69.2  69.2       51.3      59.0       82.1
    base        unseen       60.0  20.0       46.7      33.3      100.0
    1 epoch     unseen       60.0  33.3       40.0      20.0      100.0
    2 epochs    unseen       60.0  33.3       40.0      33.3      100.0
    4 epochs    unseen       53.3  53.3       46.7      26.7      100.0

Ranking by likelihood is no better than greedy decoding, so decoding keeps greedy. Training makes
the student pick seen tools' siblings better and unseen tools' no better than the untrained model
(more epochs: memorised). The embedder picks far better: decoding "retrieved" lets it choose.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import log_softmax

from toolalpaca_utils.agents.episode import documented_thoughts
from toolalpaca_utils.corpus import load_tools
from toolalpaca_utils.evaluation import items_from_corpus, spread_over_tools
from toolalpaca_utils.function_retrieval import FunctionRetriever
from toolalpaca_utils.llm import resolve_model
from toolalpaca_utils.openapi import function_schemas, record_spec
from toolalpaca_utils.react import build_messages
from toolalpaca_utils.training.run import heldout_instances

RULES = ("greedy", "sum", "per token", "per character", "retrieval")


class Scorer:
    """Log-probabilities of continuations of a prompt, the prompt read once (llama.cpp in-process)."""

    def __init__(self, lora_path: str | None, model: str = "smollm2-135m-instruct"):
        import llama_cpp
        from transformers import AutoTokenizer

        from toolalpaca_utils.llm.hf import hf_checkpoint

        self.tokenizer = AutoTokenizer.from_pretrained(hf_checkpoint(model))
        self.llm = llama_cpp.Llama(resolve_model(model).path, lora_path=lora_path, logits_all=True,
                                   n_ctx=4096, n_threads=2, verbose=False)

    def prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def continuations(self, prompt: str, texts: list[str]) -> list[tuple[list[int], list[float]]]:
        """Each text's tokens (after the prompt's) and their log-probabilities."""
        head = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        self.llm.reset()
        self.llm.eval(head)
        out = []
        for text in texts:
            full = self.llm.tokenize((prompt + text).encode(), add_bos=False, special=True)
            k = next((i for i, (a, b) in enumerate(zip(head, full)) if a != b), min(len(head), len(full)))
            self.llm.n_tokens = k  # the next eval drops the cache past k: the shared prompt is read once
            self.llm.eval(full[k:])
            rows = log_softmax(np.asarray(self.llm.scores[k - 1:len(full) - 1], dtype=np.float64), axis=1)
            out.append((full[k:], [float(rows[j, t]) for j, t in enumerate(full[k:])]))
        return out


def greedy_pick(scored: list[tuple[list[int], list[float]]]) -> int:
    """The candidate grammar-constrained greedy decoding ends in: where the candidates part, the
    token of the highest log-probability (all alive candidates share the context there)."""
    alive, j = list(range(len(scored))), 0
    while len(alive) > 1:
        options: dict[int, list[int]] = {}
        for i in alive:
            if j < len(scored[i][0]):
                options.setdefault(scored[i][0][j], []).append(i)
        if not options:
            break
        best = max(options, key=lambda t: scored[options[t][0]][1][j])
        alive, j = options[best], j + 1
    return alive[0]


def picks(scored: list[tuple[list[int], list[float]]], texts: list[str]) -> dict[str, int]:
    totals = [sum(lp) for _, lp in scored]
    by = {"sum": totals, "per token": [t / max(1, len(s[0])) for t, s in zip(totals, scored)],
          "per character": [t / max(1, len(x)) for t, x in zip(totals, texts)]}
    return {"greedy": greedy_pick(scored), **{rule: int(np.argmax(v)) for rule, v in by.items()}}


def choice_rows(scorer: Scorer, items: list[tuple[str, str, str]], records: dict, retriever) -> list[dict]:
    """One row per (tool, request, golden function) whose tool has two or more functions."""
    rows = []
    for tool, request, golden in items:
        record = records[tool]
        names = list(function_schemas(record_spec(record)))
        if len(names) < 2:
            continue
        thoughts = documented_thoughts(record)
        texts = [json.dumps({"thought": thoughts[n], "action": n})[:-1] for n in names]
        chosen = picks(scorer.continuations(scorer.prompt(build_messages(record, request)), texts), texts)
        rows.append({"tool": tool, "request": request, "golden": golden,
                     **{rule: names[i] for rule, i in chosen.items()}, "retrieval": retriever.choose(record, request)})
    return rows


def sets(corpus: Path) -> tuple[dict[str, list[tuple[str, str, str]]], dict]:
    records, held = load_tools(corpus), heldout_instances(corpus)
    unseen, _ = items_from_corpus(corpus)
    return {"held-out": [(r["tool"], r["instruction"], r["steps"][0]["action"]) for r in held if r["steps"]],
            "unseen simulated": [(it.tool, it.instruction, it.golden[0]["Action"])
                                 for it in spread_over_tools(unseen, 21)]}, records


def served_lora(path: str, name: str, work: Path) -> str | None:
    """The GGUF LoRA of ``path``: itself, a peft adapter folder exported (as notebook 04 does), or
    None for "none" (the base model)."""
    if path == "none":
        return None
    if Path(path).is_dir():
        from toolalpaca_utils.export.gguf_lora import gguf_lora

        return str(gguf_lora(path, work / f"{name}.gguf", base_gguf=resolve_model("smollm2-135m-instruct").path))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", nargs="+", required=True, metavar="NAME=PATH",
                    help="students to compare: a GGUF LoRA, a peft adapter folder, or none (the base model)")
    ap.add_argument("--corpus", type=Path, default=Path("runs/cpu/simulation"), help="the corpus they were trained on")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/function_choice.json"))
    args = ap.parse_args()
    started = time.perf_counter()
    named, records = sets(args.corpus)
    table, detail, retriever = [], {}, FunctionRetriever()
    work = Path(tempfile.mkdtemp(prefix="function-choice-"))  # exported adapters, never next to the results
    for spec in args.adapter:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--adapter takes NAME=PATH, got {spec!r}")
        scorer = Scorer(served_lora(path, name, work))
        for set_name, items in named.items():
            rows = choice_rows(scorer, items, records, retriever)
            detail[f"{name} / {set_name}"] = rows
            table.append({"adapter": name, "set": set_name, "requests": len(rows),
                          **{r: round(100 * sum(x[r] == x["golden"] for x in rows) / max(1, len(rows)), 1) for r in RULES}})
            print(json.dumps(table[-1]), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    minutes = round((time.perf_counter() - started) / 60, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"adapters": args.adapter, "corpus": str(args.corpus), "minutes": minutes,
                                    "table": table, "rows": detail}, indent=1))
    print(f"right function, % of multi-function requests ({minutes} min):")
    for row in table:
        print(f"  {row['adapter']:<12} {row['set']:<17} n={row['requests']:<3} " + "  ".join(f"{r} {row[r]:5.1f}" for r in RULES))


if __name__ == "__main__":
    main()
