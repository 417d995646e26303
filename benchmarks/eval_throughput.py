"""Evaluation throughput of the student: in-process (HF, the removed LocalChatModel) vs served
(llama.cpp replicas, base GGUF + the adapter as a GGUF LoRA), on the same first-step prompts of
the real-tool eval set, greedy, in one invocation; plus how often their first steps agree.

    python benchmarks/eval_throughput.py [--n 16] [--max-tokens 64] [--adapter runs/cpu/training/adapter]
                                         [--batch 8] [--replicas 2] [--work-dir DIR]

* in-process: ``benchmarks/_inprocess_student.py`` (a pinned copy of ``LocalChatModel`` as of
  c862be3) with its defaults: dtype "auto" (bf16 on a CPU with AVX512-BF16/AMX, else fp32),
  prefix cache on, ``chat_batch`` ``--batch`` chats at a time, torch's default thread count;
* served: ``open_student(model, adapters=ADAPTER, name="fine-tuned", replicas=2)``, the requests
  sent concurrently with ``ChatClient.chat_many`` (one in flight per replica, 1 thread each).

Setup (model load, adapter export, server start, a short warm-up) is reported but not timed.
The agreement compares the two first steps parsed by ``react.parse_step``: the same action with
the same input, and the same text exactly (the served base is quantised, so some drift is
expected). Writes ``benchmarks/results/eval_throughput.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the pinned baseline next to this file

from toolalpaca_utils.evaluation import spread_over_tools  # noqa: E402
from toolalpaca_utils.llm import DEFAULT_MODEL, LLMError, open_student, resolve_model  # noqa: E402
from toolalpaca_utils.performance import benchmark_summary  # noqa: E402
from toolalpaca_utils.react import build_messages, parse_step  # noqa: E402
from toolalpaca_utils.realtools import load_real_eval, real_tool_records  # noqa: E402
from toolalpaca_utils.runs import runs_root  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ADAPTER = runs_root() / "cpu" / "training" / "adapter"
# the prompts are first steps: no tool is called, the URL only fills the records' server entry
PLACEHOLDER_URL = "http://127.0.0.1:9"
WARMUP = [{"role": "user", "content": "Hello"}]


def stats(results, seconds: float) -> dict:
    tokens = sum(r.completion_tokens for r in results)
    return {"seconds": round(seconds, 2), "items_per_min": round(len(results) * 60 / seconds, 2),
            "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 2),
            "prompt_tokens": sum(r.prompt_tokens for r in results)}


def run_inprocess(model_name: str, adapter: Path, chats, *, batch: int, max_tokens: int) -> tuple[list, dict]:
    import torch
    from _inprocess_student import LocalChatModel

    start = time.perf_counter()
    model = LocalChatModel(model_name, adapter=str(adapter), max_batch_size=batch)  # dtype "auto"
    model.chat_batch([WARMUP], max_tokens=4)  # warm-up, then start from an empty prefix cache
    model.clear_prefix_cache()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    results = model.chat_batch(chats, max_tokens=max_tokens, temperature=0.0)
    seconds = time.perf_counter() - start
    dtype = str(next(model.model.parameters()).dtype).removeprefix("torch.")
    info = {"engine": f"HF+peft, chat_batch bs={batch}",
            "dtype": dtype, "threads": f"torch {torch.get_num_threads()} threads (default)",
            "setup_seconds": round(setup, 1), **stats(results, seconds)}
    del model
    gc.collect()
    return results, info


def lora_dtype(path: Path) -> str:
    try:
        import gguf

        return gguf.GGUFReader(str(path)).tensors[0].tensor_type.name
    except Exception:  # only a label in the table
        return "?"


def run_served(model_name: str, adapter: Path, chats, *, replicas: int, max_tokens: int,
               work_dir: Path) -> tuple[list, dict]:
    start = time.perf_counter()
    with open_student(model_name, adapters=adapter, name="fine-tuned", replicas=replicas,
                      work_dir=work_dir) as client:
        client.chat_many([{"messages": WARMUP, "max_tokens": 4, "temperature": 0.0}] * client.parallelism,
                         return_exceptions=False)  # warm-up: every replica answers once
        setup = time.perf_counter() - start
        start = time.perf_counter()
        results = client.chat_many([{"messages": m, "max_tokens": max_tokens, "temperature": 0.0} for m in chats])
        seconds = time.perf_counter() - start
        n_servers = 1 + len(client.replica_urls)
    failed = [r for r in results if isinstance(r, LLMError)]
    if failed:
        raise SystemExit(f"{len(failed)}/{len(results)} served requests failed, the first: {failed[0]}")
    # open_chat gives each of several replicas 1 thread; a lone server takes embedded_server's default
    threads = 1 if n_servers > 1 else (int(os.environ.get("TOOLALPACA_LLM_THREADS", 0))
                                       or max(1, (os.cpu_count() or 1) - 1))
    base_quant = Path(resolve_model(model_name).path).stem.rsplit(".", 1)[-1]
    lora = next(work_dir.glob("fine-tuned.gguf"), None)
    info = {"engine": f"GGUF+LoRA, chat_many {client.parallelism} in flight",
            "dtype": f"{base_quant} base + {lora_dtype(lora) if lora else '?'} LoRA",
            "threads": f"{n_servers} replicas x {threads} thread{'s' if threads > 1 else ''}",
            "setup_seconds": round(setup, 1), **stats(results, seconds)}
    return results, info


def agreement(inprocess, served) -> tuple[dict, list[dict]]:
    rows = []
    for a, b in zip(inprocess, served):
        pa, pb = parse_step(a.text), parse_step(b.text)
        rows.append({"kinds": [pa.kind, pb.kind],
                     "same_action_and_input": pa.kind == pb.kind == "action" and pa.action == pb.action
                     and pa.action_input == pb.action_input,
                     "same_text": a.text == b.text})
    n = len(rows)
    summary = {
        "same_action_and_input": sum(r["same_action_and_input"] for r in rows),
        "same_text": sum(r["same_text"] for r in rows),
        "n": n,
        "kinds_inprocess": {k: sum(r["kinds"][0] == k for r in rows) for k in ("action", "final", "invalid")},
        "kinds_served": {k: sum(r["kinds"][1] == k for r in rows) for k in ("action", "final", "invalid")},
    }
    summary["share_same_action_and_input"] = round(summary["same_action_and_input"] / n, 3) if n else None
    summary["share_same_text"] = round(summary["same_text"] / n, 3) if n else None
    return summary, rows


def print_table(args, ip: dict, sv: dict, ratio: float, agree: dict) -> None:
    rows = [("", "in-process (HF)", "served (llama.cpp)"),
            ("engine", ip["engine"], sv["engine"]),
            ("dtype", ip["dtype"], sv["dtype"]),
            ("threads", ip["threads"], sv["threads"]),
            ("setup s (not timed)", ip["setup_seconds"], sv["setup_seconds"]),
            ("wall s", ip["seconds"], sv["seconds"]),
            ("items/min", ip["items_per_min"], sv["items_per_min"]),
            ("generated tokens", ip["generated_tokens"], sv["generated_tokens"]),
            ("generated tokens/s", ip["tokens_per_s"], sv["tokens_per_s"]),
            ("prompt tokens", ip["prompt_tokens"], sv["prompt_tokens"])]
    w0 = max(len(str(r[0])) for r in rows)
    w1 = max(len(str(r[1])) for r in rows)
    print(f"\n{args.n} real-tool first-step prompts, greedy, max {args.max_tokens} new tokens, adapter {args.adapter}")
    for label, a, b in rows:
        print(f"{label:<{w0}}  {str(a):<{w1}}  {b}")
    n = agree["n"]
    print(f"ratio served/in-process items/min: {ratio:.2f}")
    print(f"first steps agree (parse_step: same action and action input): {agree['same_action_and_input']}/{n}"
          f" ({agree['share_same_action_and_input']:.0%}); same text exactly: {agree['same_text']}/{n}"
          f" ({agree['share_same_text']:.0%})")
    print(f"parsed kinds, in-process: {agree['kinds_inprocess']}; served: {agree['kinds_served']}")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="eval items, spread over the tools (default 16)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--adapter", type=Path, default=DEFAULT_ADAPTER,
                    help="the trained LoRA adapter (default: notebook 03's, runs/cpu/training/adapter)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the base model (a registry GGUF)")
    ap.add_argument("--batch", type=int, default=8, help="in-process chats per batch (its default, 8)")
    ap.add_argument("--replicas", type=int, default=2, help="llama.cpp servers (1 thread each when > 1)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="where the exported GGUF LoRA goes (default: a temporary folder)")
    args = ap.parse_args()
    if not (args.adapter / "adapter_config.json").is_file():
        raise SystemExit(f"no trained LoRA adapter at {args.adapter} (adapter_config.json missing): run notebook 03 "
                         "(training) first, or pass --adapter DIR")

    records = {r["Name"]: r for r in real_tool_records(base_url=PLACEHOLDER_URL)}
    items = spread_over_tools(load_real_eval(), args.n)
    chats = [build_messages(records[it["tool"]], it["instruction"]) for it in items]

    inprocess, ip = run_inprocess(args.model, args.adapter, chats, batch=args.batch, max_tokens=args.max_tokens)
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eval-throughput-")))
        served, sv = run_served(args.model, args.adapter, chats, replicas=args.replicas,
                                max_tokens=args.max_tokens, work_dir=work_dir)
    ratio = sv["items_per_min"] / ip["items_per_min"]
    agree, rows = agreement(inprocess, served)

    out = {"benchmark": "eval_throughput", "n_prompts": len(chats), "max_tokens": args.max_tokens,
           "model": args.model, "adapter": str(args.adapter), "inprocess": ip, "served": sv,
           "ratio_served_vs_inprocess_items_per_min": round(ratio, 2), "agreement": agree,
           "prompts": [{"id": it["id"], "tool": it["tool"], **row, "text_inprocess": a.text, "text_served": b.text}
                       for it, row, a, b in zip(items, rows, inprocess, served)]}
    out["summary"] = benchmark_summary(
        title="evaluation throughput", measure="items/min (first steps)",
        baseline=f"in-process HF student (LocalChatModel, bs={args.batch}, {ip['dtype']})",
        baseline_value=ip["items_per_min"],
        ours=f"served student (llama.cpp, {sv['threads']})", ours_value=sv["items_per_min"],
        target_ratio=1.0,
        note=f"{len(chats)} real-tool first-step prompts, greedy, {args.max_tokens} new tokens; generated tokens/s "
             f"{ip['tokens_per_s']} vs {sv['tokens_per_s']}; same action+input "
             f"{agree['same_action_and_input']}/{agree['n']}, same text {agree['same_text']}/{agree['n']}")
    print_table(args, ip, sv, ratio, agree)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_throughput.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
