"""The engine's weights: the packaged Q4_1 GGUF against the F16 copy the book serves, in one run.

llama.cpp (llama-cpp-python, the book's engine build) loads each file with one thread, as a book
replica does, and reads the same ~800-token prompt (the size of a ReAct step's prompt), then writes
64 tokens greedily after it. A Q8_0 copy (a new quantisation of the Q4_1 weights) is shown for
context. Figures are medians of ``--repeats`` runs; agreement is how many of the greedy tokens,
over a few prompts, equal the packaged file's.

    python benchmarks/engine_weights.py [--repeats 3]

About a minute. Measured 2026-12-07 on this machine's AMD EPYC cores (one thread):

    weights          prompt tok/s   generate tok/s   greedy tokens as Q4_1
    Q4_1 (packaged)       165.0          65.0             96/96
    F16 (served)          287.8          65.3             33/96
    Q8_0                  252.5          71.8             38/96

(Greedy text parts ways with the packaged file's after a few tokens, as any change of numerics does.)

Writes ``benchmarks/results/engine_weights.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import llama_cpp

from toolalpaca_utils.llm.registry import resolve_model
from toolalpaca_utils.llm.served_weights import convert, served_gguf
from toolalpaca_utils.performance import benchmark_summary

PROMPTS = ["The capital of France is", "To convert 100 US dollars to euros, call the function",
           "Thought: The request needs this: Find cities by name\nAction:", "A JSON object with two fields:"]


def measure(path: Path, prompt_tokens: list[int], repeats: int) -> dict:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    read, write = [], []
    for _ in range(repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt_tokens)
        read.append(len(prompt_tokens) / (time.perf_counter() - start))
        start = time.perf_counter()
        for token in prompt_tokens[:64]:  # one token a step, as generation runs
            llm.eval([token])
        write.append(64 / (time.perf_counter() - start))
    greedy = [llm.tokenize(p.encode()) for p in PROMPTS]
    continuations = [list(_greedy(llm, toks, 24)) for toks in greedy]
    return {"file": path.name, "mb": round(path.stat().st_size / 2**20, 1),
            "prompt_tok_s": round(statistics.median(read), 1), "generate_tok_s": round(statistics.median(write), 1),
            "greedy": continuations}


def _greedy(llm, tokens: list[int], n: int):
    for i, token in enumerate(llm.generate(tokens, temp=0.0, reset=True)):
        if i >= n or token == llm.token_eos():
            return
        yield token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/engine_weights.json"))
    args = ap.parse_args()
    spec = resolve_model()
    packaged = Path(spec.path)
    text = (Path(__file__).resolve().parents[1] / "ARCHITECTURE.md").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        files = {"Q4_1 (packaged)": packaged, "F16 (served)": served_gguf(spec),
                 "Q8_0": convert(packaged, Path(tmp) / "q8_0.gguf", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)}
        tokenizer = llama_cpp.Llama(model_path=str(packaged), n_ctx=256, vocab_only=True, verbose=False)
        prompt = tokenizer.tokenize(text.encode())[:800]
        rows = {name: measure(path, prompt, args.repeats) for name, path in files.items()}
    reference = rows["Q4_1 (packaged)"]["greedy"]
    print(f"{'weights':<18}{'MB':>8}{'prompt tok/s':>15}{'generate tok/s':>16}{'greedy tokens as Q4_1':>24}")
    for name, row in rows.items():
        same = sum(a == b for ref, got in zip(reference, row["greedy"]) for a, b in zip(ref, got))
        row["greedy_agreement"] = f"{same}/{sum(map(len, reference))}"
        print(f"{name:<18}{row['mb']:>8}{row['prompt_tok_s']:>15}{row['generate_tok_s']:>16}{row['greedy_agreement']:>24}")
    packaged_row, served_row = rows["Q4_1 (packaged)"], rows["F16 (served)"]
    summary = benchmark_summary(
        title="Engine weights: prompt reading", measure="prompt tokens/s, one llama.cpp thread (~800-token prompt)",
        baseline="llama.cpp, the packaged Q4_1 GGUF", baseline_value=packaged_row["prompt_tok_s"],
        ours="llama.cpp, its F16 copy (served)", ours_value=served_row["prompt_tok_s"], target_ratio=1.3,
        note=f"generation {packaged_row['generate_tok_s']} -> {served_row['generate_tok_s']} tok/s; "
             f"greedy tokens equal to Q4_1's: {served_row['greedy_agreement']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "threads": 1, "prompt_tokens": len(prompt),
                                    "repeats": args.repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
