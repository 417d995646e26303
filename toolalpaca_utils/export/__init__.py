"""Trained adapters in the forms engines load: a GGUF LoRA for llama.cpp (:func:`gguf_lora`), a
merged transformers checkpoint (:func:`merged_checkpoint`), a stack of adapters as one peft
adapter for vLLM (:func:`stacked_peft_adapter`). CLI:
``python -m toolalpaca_utils.export adapter RUN_DIR --to gguf|merged``."""
from .gguf_lora import gguf_lora
from .lora import AdapterExportError
from .merged import merged_checkpoint
from .peft_stack import stacked_peft_adapter

__all__ = ["AdapterExportError", "gguf_lora", "merged_checkpoint", "stacked_peft_adapter"]
