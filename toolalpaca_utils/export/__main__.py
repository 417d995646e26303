"""``python -m toolalpaca_utils.export adapter RUN_DIR --to gguf|merged``.

RUN_DIR is a training run (``runs/<profile>/training``: its ``adapter/`` and the base model named
in its manifest) or a peft adapter directory (then ``--base`` names the model). ``gguf`` writes
``RUN_DIR/export/adapter.gguf`` for ``llama_cpp.server --model <base gguf> --lora_path <it>``;
``merged`` writes ``RUN_DIR/export/merged-<dtype>/`` (a transformers checkpoint, e.g. for vLLM).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def adapter_and_base(run_dir: Path, base: str | None) -> tuple[Path, str]:
    """The adapter directory and the base model of a training run or adapter directory."""
    adapter = run_dir / "adapter" if (run_dir / "adapter" / "adapter_config.json").is_file() else run_dir
    if not (adapter / "adapter_config.json").is_file():
        raise SystemExit(f"error: {run_dir} is neither a training run (adapter/) nor a LoRA adapter directory")
    if base:
        return adapter, base
    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        model = json.loads(manifest.read_text()).get("models", {}).get("base")
        if model:
            return adapter, model
    raise SystemExit(f"error: {run_dir} has no manifest naming its base model; pass --base MODEL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolalpaca_utils.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = parser.add_subparsers(dest="what", required=True)
    cmd = sub.add_parser("adapter", help="export a trained LoRA adapter", allow_abbrev=False)
    cmd.add_argument("run_dir", type=Path)
    cmd.add_argument("--to", choices=("gguf", "merged"), required=True)
    cmd.add_argument("--out", type=Path, help="output path (default: RUN_DIR/export/...)")
    cmd.add_argument("--base", help="base model (default: the run manifest's)")
    cmd.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"),
                     help="merged checkpoint dtype (default bfloat16, as a GPU serves it)")
    args = parser.parse_args(argv)
    adapter, base = adapter_and_base(args.run_dir, args.base)
    if args.to == "gguf":
        from ..llm.registry import resolve_model
        from .gguf_lora import gguf_lora

        spec = resolve_model(base)
        if spec.kind != "gguf":
            raise SystemExit(f"error: the base {base!r} is not a GGUF model; llama.cpp needs one")
        out = gguf_lora(adapter, args.out or args.run_dir / "export" / "adapter.gguf", base_gguf=spec.path)
        print(f"{out}\nserve: python -m llama_cpp.server --model {spec.path} --lora_path {out}")
    else:
        from .merged import merged_checkpoint

        out = merged_checkpoint(base, adapter, args.out or args.run_dir / "export" / f"merged-{args.dtype}",
                                dtype=args.dtype)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
