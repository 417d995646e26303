"""The base model a run starts from: :func:`plain_weights` makes a GGUF-loaded model trainable
(the Trainer refuses anything marked quantized), :func:`weights_dtype` is the dtype a device
trains in, and ``_load_base`` loads the base on the CPU in it.
"""
from __future__ import annotations


def plain_weights(model):
    """Make a GGUF-loaded model trainable. transformers marks a model read from a GGUF file as
    quantized even when its legacy loader dequantized every tensor to plain ``nn.Linear``
    weights (the embedded model's case), and the Trainer refuses quantized models. When the
    weights really are plain float tensors the marker is dropped; weights still packed in GGUF
    blocks raise a clear error."""
    import torch

    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or type(quantizer).__name__ != "GgufHfQuantizer":
        return model
    if getattr(quantizer, "supported", False) and not quantizer.quantization_config.dequantize:
        packed = [type(m).__name__ for m in model.modules()
                  if not isinstance(m, torch.nn.Module) or "gguf" in type(m).__name__.lower()]
        if packed:
            raise ValueError("this GGUF model keeps its weights in quantized blocks, which cannot be trained; "
                             "load it dequantized (as toolalpaca_utils.llm.hf does)")
    if any(p.dtype not in (torch.float32, torch.bfloat16, torch.float16) for p in model.parameters()):
        raise ValueError("the base model has non-float weights and cannot be trained with LoRA here")
    quantizer.remove_quantization_config(model)  # what transformers does for a dequantized load
    model.hf_quantizer = None
    model.is_quantized = False
    return model


def weights_dtype(device: str | None = None, bf16: bool | None = None) -> str:
    """The dtype the base's weights are trained in on ``device`` (None: this machine's training
    device, cuda when there is one): bfloat16 on a GPU (unless ``bf16`` is False), float32 on a
    CPU (where bf16 only runs under autocast). A checkpoint that a run trains on (a merged
    adapter, STE's ``train_base``) is written in this dtype: fp32 would double its size on disk
    and be cast down again at load."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bfloat16" if str(device).startswith("cuda") and bf16 is not False else "float32"


def _load_base(base_model: str, device: str, *, bf16: bool | None = None, attn_implementation: str = ""):
    import torch

    from ..llm.hf import load_model_and_tokenizer

    dtype = getattr(torch, weights_dtype(device, bf16))
    # load on the CPU: the Trainer (and accelerate, under a multi-GPU launch) places it
    return load_model_and_tokenizer(base_model, device="cpu", dtype=dtype, attn_implementation=attn_implementation)
