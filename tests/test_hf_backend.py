"""The local HF backend on the embedded GGUF weights, with a freshly made LoRA adapter."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

CHATS = [
    [{"role": "user", "content": "What is 2 plus 2?"}],
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Capital of France?"}],
    [{"role": "user", "content": "Say yes."}],
]


@pytest.fixture(scope="module")
def base():
    from toolalpaca_utils.llm import LocalChatModel

    return LocalChatModel()


def test_batched_generation(base):
    results = base.chat_batch(CHATS, max_tokens=12)
    assert len(results) == 4
    assert all(r.text.strip() and 0 < r.completion_tokens <= 12 for r in results)
    # a chat alone gets the same greedy answer as inside the batch
    alone = base.chat(CHATS[1], max_tokens=12)
    assert alone.text == results[1].text


def test_stop_strings_cut_the_output(base):
    r = base.chat([{"role": "user", "content": "Count from 1 to 10 separated by commas."}], max_tokens=40, stop=["5"])
    assert "5" not in r.text and "6" not in r.text


def test_lora_adapter_loads_and_changes_the_model(base, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from toolalpaca_utils.llm import LocalChatModel
    from toolalpaca_utils.llm.hf import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer()
    # init_lora_weights=False gives a non-zero update, so applying the adapter is observable
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file()

    tuned = LocalChatModel(adapter=str(adapter_dir))
    assert hasattr(tuned.model, "peft_config")
    enc = base.tokenizer(base.render(CHATS[0]), return_tensors="pt")
    with torch.no_grad():
        base_logits = base.model(**enc).logits
        tuned_logits = tuned.model(**enc).logits
    assert not torch.allclose(base_logits, tuned_logits)
    assert len(tuned.chat_batch(CHATS[:2], max_tokens=6)) == 2
