"""Adapter export: a peft LoRA as a GGUF LoRA that a plain llama.cpp server applies to the base
GGUF (answering as the peft model does in transformers), as a merged checkpoint, and a stack of
adapters as one adapter."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2 plus 2?", "Name a colour.", "Capital of France?", "Say yes.", "Write a haiku about rain.",
           "What day comes after Monday?"]
TOKENS = 8


@pytest.fixture(scope="module")
def base():
    import torch

    from toolalpaca_utils.llm.hf import load_model_and_tokenizer

    return load_model_and_tokenizer(device="cpu", dtype=torch.float32)


def _adapter(base, out_dir, *, seed: int, layers: list[int], scale: float = 1.0):
    """A LoRA adapter with random (non-zero) weights: applying it is observable. ``scale`` keeps
    the change moderate, as a trained adapter's is."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, tokenizer = base
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
                        layers_to_transform=layers, init_lora_weights=False)
    peft = get_peft_model(copy.deepcopy(model), config)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.mul_(scale)
    peft.save_pretrained(out_dir)
    return out_dir


def _greedy(model, tokenizer, prompts):
    import torch

    outs = []
    for q in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=TOKENS, do_sample=False)
        outs.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return outs


def _served(client, prompts):
    return [client.chat([{"role": "user", "content": q}], max_tokens=TOKENS, temperature=0.0).text for q in prompts]


def test_cli_gguf_adapter_served_by_plain_llama_cpp_answers_like_peft(base, tmp_path):
    """The CLI on a training run folder; then ``python -m llama_cpp.server --model <base gguf>
    --lora_path <out>`` (what embedded_server runs) against the peft model in transformers."""
    from toolalpaca_utils.llm import ChatClient, embedded_server, resolve_model
    from toolalpaca_utils.llm.hf import peft_model

    run = tmp_path / "training"
    _adapter(base, run / "adapter", seed=0, layers=[26, 27, 28, 29], scale=0.5)
    (run / "manifest.json").write_text(json.dumps({"models": {"base": "smollm2-135m-instruct"}}))
    done = subprocess.run([sys.executable, "-m", "toolalpaca_utils.export", "adapter", str(run), "--to", "gguf"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = run / "export" / "adapter.gguf"
    assert out.is_file() and str(out) in done.stdout and "--lora_path" in done.stdout

    model, tokenizer = base
    want = _greedy(peft_model(__import__("copy").deepcopy(model), str(run / "adapter")).eval(), tokenizer, PROMPTS)
    plain = _greedy(model, tokenizer, PROMPTS)
    assert want != plain  # the adapter changes what the model says
    with embedded_server(lora_path=out, alias="tuned", n_threads=1) as srv:
        got = _served(ChatClient(srv.base_url, srv.model), PROMPTS)
    with embedded_server(n_threads=1) as srv:
        served_plain = _served(ChatClient(srv.base_url, srv.model), PROMPTS)
    same = sum(g.strip() == w.strip() for g, w in zip(got, want))
    same_base = sum(a.strip() == b.strip() for a, b in zip(served_plain, plain))
    print(f"\nGGUF LoRA on the served F16 base vs peft fp32: {same}/{len(PROMPTS)} identical greedy {TOKENS}-token replies; "
          f"the base alone, llama.cpp vs transformers: {same_base}/{len(PROMPTS)}")
    # the served F16 copy holds the Q4_1 weights to fp16 rounding and transformers dequantises them to
    # fp32: greedy replies of a random adapter drift apart as the base's own do; the adapter's
    # *effect* must be the same (next test, on logits), and the replies no further apart than the base's
    assert same >= same_base and got != served_plain, list(zip(got, want))
    _adapter_effect_matches(base, run / "adapter", out, resolve_model().path)


def _adapter_effect_matches(base, adapter, gguf_adapter, base_gguf):
    """The change the adapter makes to the next-token logits, in transformers (peft, fp32) and in
    llama.cpp (GGUF LoRA on the Q4_1 base), points the same way for every prompt. Measured: 0.85-0.98,
    the same for q/k adapters (whose rows the export permutes) as for v/down ones (no permutation),
    so the residual is llama.cpp's 8-bit activations; a mis-mapped tensor gives ~0."""
    import copy

    import numpy as np
    import torch
    from llama_cpp import Llama

    from toolalpaca_utils.llm.hf import peft_model

    model, tokenizer = base
    tuned = peft_model(copy.deepcopy(model), str(adapter)).eval()
    engines = [Llama(model_path=base_gguf, lora_path=lora, n_ctx=512, n_threads=1, verbose=False, logits_all=True)
               for lora in (None, str(gguf_adapter))]
    cosines = []
    for q in PROMPTS[:3]:
        text = tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            hf = [m(**ids).logits[0, -1].numpy() for m in (model, tuned)]
        lc = []
        for engine in engines:
            engine.reset()
            engine.eval(ids["input_ids"][0].tolist())
            lc.append(np.array(engine.scores[engine.n_tokens - 1]))
        a, b = hf[1] - hf[0], lc[1] - lc[0]
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    print("cosine of the adapter's logit change, transformers vs llama.cpp:", [round(c, 3) for c in cosines])
    assert min(cosines) > 0.8, cosines


def test_stacked_adapters_equal_training_on_merged_weights(base, tmp_path):
    """Adapter 2 trained on the weights with adapter 1 merged in: the stack as one peft adapter
    (for vLLM) computes what merge(1) + 2 computes; the GGUF writer accepts the stack."""
    import copy

    import torch
    from peft import PeftModel

    from toolalpaca_utils.export import gguf_lora, stacked_peft_adapter
    from toolalpaca_utils.llm import resolve_model

    model, tokenizer = base
    first = _adapter(base, tmp_path / "a1", seed=1, layers=[28, 29])
    second = _adapter(base, tmp_path / "a2", seed=2, layers=[29])
    merged = PeftModel.from_pretrained(copy.deepcopy(model), str(first)).merge_and_unload()
    want_model = PeftModel.from_pretrained(merged, str(second)).eval()
    stacked = stacked_peft_adapter([first, second], tmp_path / "stack")
    config = json.loads((stacked / "adapter_config.json").read_text())
    assert config["r"] == 8  # 4 + 4 on layer 29, zero-padded elsewhere
    got_model = PeftModel.from_pretrained(copy.deepcopy(model), str(stacked)).eval()
    ids = tokenizer("The weather in Oslo is", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(got_model(**ids).logits, want_model(**ids).logits, atol=1e-3)
    assert stacked_peft_adapter([first], tmp_path / "one") == first  # one adapter: as it is
    assert gguf_lora([first, second], tmp_path / "stack.gguf", base_gguf=resolve_model().path).stat().st_size > 0


def test_merged_checkpoint_in_the_dtype_asked_for(base, tmp_path):
    import copy

    import torch

    from toolalpaca_utils.export import merged_checkpoint
    from toolalpaca_utils.llm.hf import load_model_and_tokenizer, peft_model

    model, tokenizer = base
    adapter = _adapter(base, tmp_path / "adapter", seed=3, layers=[29])
    path = merged_checkpoint("smollm2-135m-instruct", adapter, tmp_path / "merged", dtype="bfloat16")
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["dtype"] == "bfloat16"
    merged, _ = load_model_and_tokenizer(path, device="cpu", dtype=torch.float32)
    ids = tokenizer("Capital of France?", return_tensors="pt")
    with torch.no_grad():
        want = peft_model(copy.deepcopy(model), str(adapter))(**ids).logits
        assert torch.allclose(merged(**ids).logits, want, atol=0.5)  # bf16 weights round
    written = (tmp_path / "merged" / "config.json").stat().st_mtime_ns
    assert merged_checkpoint("smollm2-135m-instruct", adapter, tmp_path / "merged", dtype="bfloat16") == path
    assert (tmp_path / "merged" / "config.json").stat().st_mtime_ns == written  # written once


def test_export_errors_are_clear(tmp_path):
    from toolalpaca_utils.export import AdapterExportError, gguf_lora
    from toolalpaca_utils.llm import resolve_model

    with pytest.raises(AdapterExportError, match="adapter_config.json is missing"):
        gguf_lora(tmp_path, tmp_path / "x.gguf", base_gguf=resolve_model().path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                              "use_dora": True}))
    with pytest.raises(AdapterExportError, match="DoRA"):
        gguf_lora(tmp_path, tmp_path / "x.gguf", base_gguf=resolve_model().path)
    done = subprocess.run([sys.executable, "-m", "toolalpaca_utils.export", "adapter", str(tmp_path / "nothing"),
                           "--to", "gguf"], capture_output=True, text=True)
    assert done.returncode != 0 and "neither a training run" in done.stderr


def test_a_continual_round_starts_from_the_base_with_its_adapters_merged(base, tmp_path):
    """STE's continual learning keeps adapters, not models: a round's start, loaded afresh and
    merged adapter by adapter, has the weights of merging them into the base in memory."""
    import copy

    import torch

    from toolalpaca_utils.llm.hf import peft_model
    from toolalpaca_utils.ste.continual import _round_start

    first = str(_adapter(base, tmp_path / "r1", seed=1, layers=[28, 29]))
    second = str(_adapter(base, tmp_path / "r2", seed=2, layers=[29]))
    want = peft_model(copy.deepcopy(base[0]), first).merge_and_unload()
    want = peft_model(want, second).merge_and_unload().state_dict()
    got, _ = _round_start("smollm2-135m-instruct", [first, second])
    got = got.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    plain, _ = _round_start("smollm2-135m-instruct", [])
    name = next(k for k in want if "layers.29.self_attn.q_proj" in k)
    assert not torch.equal(plain.state_dict()[name], want[name])     # the adapters did change it
