"""TRL as the reference trainer: the training chat template marks exactly the assistant's
tokens, and ``SFTTrainer`` (padding-free, assistant-only loss) trains the embedded student on the
messages + tools dataset that ``toolalpaca_utils.formats`` exports from the fixture corpus."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from toolalpaca_utils import formats
from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.training import IGNORE_INDEX, TrainConfig, build_example, instance_messages
from toolalpaca_utils.training.chat_template import with_training_template

FIXTURE = Path(__file__).parent / "fixtures" / "corpus_small"
END = "<|im_end|>"


def loss_runs(tokenizer, input_ids, labels) -> list[str]:
    """The decoded text of each maximal run of loss-bearing tokens."""
    runs, cur = [], []
    for tok, lab in zip(input_ids, labels):
        if lab != IGNORE_INDEX:
            assert lab == tok
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    return [tokenizer.decode(r) for r in runs + ([cur] if cur else [])]


def test_training_template_gives_the_react_tokens_and_mask_of_our_trainer(tokenizer):
    """Without tools the template renders the ReAct chat as the stock template does, and its
    generation markers select the very tokens our sequence builder labels."""
    records = load_tools(FIXTURE)
    trained = with_training_template(copy.deepcopy(tokenizer))
    for inst in load_split(FIXTURE, "train") + load_split(FIXTURE, "eval"):
        messages = instance_messages(records[inst["tool"]], inst)
        assert trained.apply_chat_template(messages, tokenize=False) == tokenizer.apply_chat_template(
            messages, tokenize=False)
        out = trained.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        ours = build_example(tokenizer, records[inst["tool"]], inst, max_length=4096)
        assert list(out["input_ids"]) == ours["input_ids"], inst["id"]
        assert [bool(m) for m in out["assistant_masks"]] == [lab != IGNORE_INDEX for lab in ours["labels"]], inst["id"]


def test_training_template_renders_tools_and_calls(tokenizer):
    records = load_tools(FIXTURE)
    inst = load_split(FIXTURE, "train")[1]
    row = formats.to_messages(inst, records[inst["tool"]])
    trained = with_training_template(copy.deepcopy(tokenizer))
    text = trained.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
    assert "<tools>\n" in text and '"name": "getDetails"' in text
    call = inst["steps"][0]
    assert f'<tool_call>{{"name": "{call["action"]}", "arguments": {call["action_input"]}}}</tool_call>{END}' in text
    assert f"<|im_start|>tool\n{call['observation']}{END}" in text


def test_a_tokenizer_without_chatml_is_refused():
    class NotChatML:
        def get_vocab(self):
            return {"<s>": 0}

    with pytest.raises(ValueError, match="ChatML"):
        with_training_template(NotChatML())


@pytest.mark.slow
def test_sft_trainer_trains_on_the_exported_messages_dataset(tmp_path):
    """A few SFTTrainer steps on the exported DatasetDict: finite loss, an adapter on disk, and a
    loss mask made only of assistant turns (content, calls and end-of-turn; no prompt, no
    instruction, no observation)."""
    import torch
    from datasets import load_from_disk

    from toolalpaca_utils.llm.hf import load_model_and_tokenizer
    from toolalpaca_utils.training import plain_weights
    from toolalpaca_utils.training.reference import sft_train

    paths = formats.export_all(FIXTURE, tmp_path / "formats")
    dataset = load_from_disk(str(paths["messages"]))["train"].select(range(4))
    torch.set_num_threads(1)
    model, tok = load_model_and_tokenizer(device="cpu", dtype=torch.float32)
    cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_last_layers=2, learning_rate=1e-3,
                      max_steps=2, per_device_batch_size=2, grad_accum=1, warmup=0, lr_scheduler="constant",
                      num_threads=1, bf16=False, seed=0)
    result = sft_train(dataset, model=plain_weights(model), tokenizer=tok, out_dir=tmp_path / "run", config=cfg)

    assert result.global_step == 2 and len(result.losses) == 2
    assert all(math.isfinite(x) and x > 0 for x in result.losses), result.losses
    assert (Path(result.adapter_dir) / "adapter_model.safetensors").is_file()
    assert json.loads((Path(result.adapter_dir) / "adapter_config.json").read_text())["r"] == 4
    assert result.tokens > 0
    trained = result.trainer.train_dataset
    for row in trained:
        runs = loss_runs(tok, row["input_ids"], row["labels"])
        assistant = [m for m in row["messages"] if m["role"] == "assistant"]
        assert len(runs) == len(assistant), runs
        for run, msg in zip(runs, assistant):
            assert run.endswith(END) and run.count(END) == 1, run
            assert run.startswith(msg["content"] or "<tool_call>"), run
            for call in msg["tool_calls"] or []:
                assert f'"name": "{call["function"]["name"]}"' in run
        for m in row["messages"]:
            if m["role"] in ("system", "user", "tool") and m["content"]:
                assert all(m["content"] not in run for run in runs), m["role"]
    # the project's trainer in the "chat" prompt format builds the very same sequences and labels
    records = load_tools(FIXTURE)
    by_id = {i["id"]: i for i in load_split(FIXTURE, "train")}
    for row in trained:
        inst = by_id[row["id"]]
        ours = build_example(tok, records[inst["tool"]], inst, max_length=4096, prompt_format="chat")
        assert (ours["input_ids"], ours["labels"]) == (list(row["input_ids"]), list(row["labels"])), row["id"]
