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
    import torch

    from toolalpaca_utils.llm import LocalChatModel

    # fp32: batched rows must give exactly what each chat gives alone; in bf16 (the default where
    # the CPU computes it natively) other batch shapes round differently and near-ties can flip
    return LocalChatModel(dtype=torch.float32)


def test_batched_generation(base):
    results = base.chat_batch(CHATS, max_tokens=12)
    assert len(results) == 4
    assert all(r.text.strip() and 0 < r.completion_tokens <= 12 for r in results)
    # a chat alone gets the same greedy answer as inside the batch
    alone = base.chat(CHATS[1], max_tokens=12)
    assert alone.text == results[1].text


DOCS = ("You are a helpful assistant for the SkyCast weather service. It reports the current weather, a "
        "three-day forecast and sunrise times for any city, in metric or imperial units. Functions: getWeather "
        "(city, units), getForecast (city, days), getSunrise (city, date). Answer briefly and politely.")
SAME_TOOL = [[{"role": "system", "content": DOCS}, {"role": "user", "content": q}]
             for q in ("Weather in Paris?", "Will it rain in Oslo tomorrow, and how cold will it be at night?",
                       "Sunrise in Rome?")]


def test_prefix_cached_batch_matches_each_chat_alone(base):
    """A batch mixing one tool's chats (their system turn encoded once), other chats and a lone
    one: every row gets exactly its own greedy answer, as alone and as in a left-padded batch."""
    from toolalpaca_utils.llm.hf import _common_prefix_length

    chats = SAME_TOOL + CHATS[1:3]
    rows = [base.tokenizer(base.render(c), add_special_tokens=False)["input_ids"] for c in chats]
    groups = base._prefix_groups(rows)
    assert _common_prefix_length(rows[:3]) >= base.min_shared_prefix
    assert sorted(len(g) for g, _ in groups) == [1, 1, 3]        # the tool's chats share one prefix
    alone = [base.chat(c, max_tokens=16).text for c in chats]
    cached = [r.text for r in base.chat_batch(chats, max_tokens=16)]
    saved = base.min_shared_prefix
    base.min_shared_prefix = 0
    try:
        padded = [r.text for r in base.chat_batch(chats, max_tokens=16)]
    finally:
        base.min_shared_prefix = saved
    assert cached == alone == padded
    assert all(t.strip() for t in cached)


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

    tuned = LocalChatModel(adapter=str(adapter_dir), dtype=torch.float32)  # same dtype as the base fixture
    assert hasattr(tuned.model, "peft_config")
    enc = base.tokenizer(base.render(CHATS[0]), return_tensors="pt")
    with torch.no_grad():
        base_logits = base.model(**enc).logits
        tuned_logits = tuned.model(**enc).logits
    assert not torch.allclose(base_logits, tuned_logits)
    assert len(tuned.chat_batch(CHATS[:2], max_tokens=6)) == 2

    # the adapter merged into a checkpoint computes what base + adapter computes, and is written once
    from toolalpaca_utils.llm.hf import merged_checkpoint

    path = merged_checkpoint("smollm2-135m-instruct", adapter_dir, tmp_path / "merged")
    merged = LocalChatModel(path, dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(merged.model(**enc).logits, tuned_logits, atol=2e-3)  # merged weights round differently
    written = (tmp_path / "merged" / "config.json").stat().st_mtime_ns
    assert merged_checkpoint("smollm2-135m-instruct", adapter_dir, tmp_path / "merged") == path
    assert (tmp_path / "merged" / "config.json").stat().st_mtime_ns == written


def _prefix_tokens_encoded(model, chats, **gen):
    """Generate for ``chats`` and count the prompt tokens read while encoding prefixes (the
    batch-of-one forward passes), next to the texts."""
    seen = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[0] == 1 and ids.shape[1] > 1:
            seen.append(ids.shape[1])

    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        texts = [r.text for r in model.chat_batch(chats, **gen)]
    finally:
        handle.remove()
    return texts, sum(seen)


def test_prefix_cache_reuses_encoded_prefixes_across_calls(base):
    """The next step of the same chats reads only what is new, and answers exactly as a model
    without the cache does."""
    base.clear_prefix_cache()
    first = base.chat_batch(SAME_TOOL + CHATS[:1], max_tokens=8)
    follow = [c + [{"role": "assistant", "content": r.text}, {"role": "user", "content": "And tomorrow?"}]
              for c, r in zip(SAME_TOOL + CHATS[:1], first)]
    cached, read_cached = _prefix_tokens_encoded(base, follow, max_tokens=12)
    saved = base.prefix_cache_tokens
    base.prefix_cache_tokens = 0
    base.clear_prefix_cache()
    try:
        fresh, read_fresh = _prefix_tokens_encoded(base, follow, max_tokens=12)
    finally:
        base.prefix_cache_tokens = saved
    assert cached == fresh
    assert 0 < read_cached < read_fresh / 2


def test_preallocated_cache_layer_grows_past_its_capacity():
    import torch

    from toolalpaca_utils.llm.hf import _preallocated_layer

    k = torch.randn(2, 3, 4, 8)
    layer = _preallocated_layer(k, k + 1, capacity=5)
    for step in range(3):
        new = torch.full((2, 3, 1, 8), float(step))
        keys, values = layer.update(new, new)
    assert keys.shape == (2, 3, 7, 8) and layer.get_seq_length() == 7
    assert torch.equal(keys[:, :, :4], k) and torch.equal(values[:, :, :4], k + 1)
    assert torch.equal(keys[:, :, 4:, 0], torch.tensor([0.0, 1.0, 2.0]).expand(2, 3, 3))


def test_rows_that_end_early_leave_the_batch_without_changing_the_others(base):
    """One row meets its stop string after a few tokens and leaves the batch; the rows that go on
    (and the one that stopped) read exactly what each reads alone."""
    chats = [[{"role": "user", "content": "Count from 1 to 30 separated by commas."}], CHATS[0], SAME_TOOL[1]]
    batch = base.chat_batch(chats, max_tokens=24, stop=["4"])
    alone = [base.chat(c, max_tokens=24, stop=["4"]) for c in chats]
    assert [r.text for r in batch] == [r.text for r in alone]
    assert [r.completion_tokens for r in batch] == [r.completion_tokens for r in alone]
    assert batch[0].finish_reason == "stop" and batch[0].completion_tokens < 24
