"""The profile of ``scripts/gpu_smoke.sh``: ``notebooks/profiles/gpu.yaml`` as it is (bf16,
gradient checkpointing, attention, LoRA on every layer, the STE and diversity settings) but at a
tiny scale, with the endpoints the smoke run starts. Written as a profile file, so the book runner
checks it like any other and runs it under its own name (``runs/gpu_smoke/``).

    python scripts/gpu_smoke_profile.py --out DIR/gpu_smoke.yaml --teacher-endpoint URL ...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout: the package next to this script

from toolalpaca_utils.params import NOTEBOOK_PARAMS  # noqa: E402
from toolalpaca_utils.profiles import PROFILES_DIR, load_profile  # noqa: E402

# Only scale changes here: 3 tools, a few instances, a few optimizer steps, one or two evaluation
# items per set. Everything that decides *how* the gpu profile runs is left as gpu.yaml has it.
TINY_SCALE: dict[str, dict] = {
    "01_toolset": {"teacher_replicas": 2, "n_tools": 3, "max_retries": 1},
    "02_simulation": {"teacher_replicas": 2, "instructions_per_tool": 2, "n_eval_tools": 1, "max_tools": 3,
                      "max_turns": 2},
    "03_training": {"max_train_steps": 3, "per_device_batch_size": 2, "grad_accum": 1, "max_length": 1024,
                    "eval_fraction": 0.2},
    "04_evaluation": {"teacher_replicas": 2, "max_items_simulated": 1, "max_items_real": 2, "max_turns": 2,
                      "judge_max_items": 1, "student_replicas": 2},
    "05_diversity": {"teacher_replicas": 2, "n_tools": [1, 2], "n_instances": 0, "seeds": [0],
                     "max_train_steps": 2, "per_device_batch_size": 2, "max_length": 1024,
                     "max_items_simulated": 1, "max_items_real": 1, "max_turns": 1, "student_replicas": 1},
    "06_ste": {"teacher_replicas": 2, "tools": ["Jokes", "Countries"], "episodes": 1, "trials": 2, "max_turns": 2,
               "diversity_tools": 0, "paraphrases_per_query": 1, "max_examples_per_tool": 4, "run_judge": False,
               "icl_k": 1, "eval_per_tool": 1, "student_replicas": 1, "ft_epochs": 1.0, "ft_batch_size": 2,
               "ft_max_length": 1024, "cl_batches": 2},
}


# With the embedded SmolLM2-135M in every role (no vLLM), the gpu profile's generation settings,
# written for a strong teacher (instruction-first simulation, free exploration, 4 functions per
# tool), leave no usable instance to train on; these keys take the tiny profile's values instead.
SMALL_MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "01_toolset": ("max_functions", "min_parameters", "max_parameters", "max_output_fields",
                   "description_max_chars", "intro_max_chars", "intro_max_tokens", "functions_max_tokens"),
    "02_simulation": ("strategy", "mode", "scaffold"),
    "06_ste": ("start_from_adapter", "explore_mode", "imagination", "answer_from_observation"),
}


def smoke_profile(endpoints: dict, *, small_models: bool = False) -> dict:
    """gpu.yaml with :data:`TINY_SCALE` over its sections and ``endpoints`` over its common section;
    with ``small_models`` also the tiny profile's :data:`SMALL_MODEL_KEYS`."""
    data = yaml.safe_load((PROFILES_DIR / "gpu.yaml").read_text())
    for section, values in TINY_SCALE.items():
        data.setdefault(section, {}).update(values)
    if small_models:
        for section, keys in SMALL_MODEL_KEYS.items():
            tiny = load_profile("tiny", section)
            data.setdefault(section, {}).update({k: tiny[k] for k in keys})
    data["common"].update(endpoints)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the profile file to write (its stem names the runs)")
    for role in ("teacher", "student"):
        ap.add_argument(f"--{role}-endpoint", required=True, help='"embedded" or an OpenAI-compatible base URL')
        ap.add_argument(f"--{role}-model", required=True, help="a registry name, or the name the server serves")
    ap.add_argument("--dialect", required=True, choices=("openai", "llama_cpp"), help="of both endpoints")
    ap.add_argument("--small-models", action="store_true",
                    help="the embedded 135M in every role: the tiny profile's generation settings")
    args = ap.parse_args(argv)
    endpoints = {"teacher_endpoint": args.teacher_endpoint, "teacher_model": args.teacher_model,
                 "teacher_dialect": args.dialect, "student_endpoint": args.student_endpoint,
                 "student_model": args.student_model, "student_dialect": args.dialect}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# written by scripts/gpu_smoke_profile.py: gpu.yaml at a tiny scale\n"
                        + yaml.safe_dump(smoke_profile(endpoints, small_models=args.small_models), sort_keys=False))
    for notebook in NOTEBOOK_PARAMS:  # a ProfileError here names the key, before anything starts
        load_profile(str(args.out), notebook)
    print(f"profile: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
