"""Stage 3 (training) on a hand-written fixture corpus: the loss mask, truncation, bad input,
and — with the embedded model — overfitting a fixed batch, adapter save/reload, and resume."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from toolalpaca_utils.corpus import load_split, load_tools, trajectory_turns
from toolalpaca_utils.runs import MissingStageError
from toolalpaca_utils.training import (
    IGNORE_INDEX, DynamicPaddingCollator, EmptyCorpusError, ToolGroupedSampler, assistant_char_spans,
    assistant_loss, build_example, build_examples, instance_messages, run_training, train_lora,
)

FIXTURE = Path(__file__).parent / "fixtures" / "corpus_small"
END = "<|im_end|>"


@pytest.fixture(scope="module")
def corpus():
    return load_tools(FIXTURE), load_split(FIXTURE, "train"), load_split(FIXTURE, "eval")


def loss_runs(tokenizer, example) -> list[str]:
    """The decoded text of each maximal run of loss-bearing tokens."""
    runs, cur = [], []
    for tok, lab in zip(example["input_ids"], example["labels"]):
        if lab != IGNORE_INDEX:
            assert lab == tok, "a label must be the token at its own position"
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tokenizer.decode(r) for r in runs]


# ------------------------------------------------------------------------------ sequence builder
def test_fixture_corpus_is_well_formed(corpus):
    records, train, evals = corpus
    assert set(records) == {"ShelfSearch", "PantryChef"}
    assert len(train) == 8 and len(evals) == 2
    assert any(len(i["steps"]) >= 3 for i in train)                       # multi-step
    assert any(s["action"] == "getDetails" for i in train for s in i["steps"])
    assert all(i["tool"] in records and i["final"] for i in train + evals)


def test_loss_tokens_are_exactly_the_assistant_turns(tokenizer, corpus):
    """Decode exactly the loss-bearing tokens: they are the assistant turns plus their end-of-turn
    marker, character for character, and nothing of the prompts or observations."""
    records, train, evals = corpus
    for inst in train + evals:
        ex = build_example(tokenizer, records[inst["tool"]], inst, max_length=4096)
        expected = [text + END for text, _obs in trajectory_turns(inst)]
        assert loss_runs(tokenizer, ex) == expected, inst["id"]
        assert ex["n_truncated"] == 0 and ex["drop_reason"] is None
        # the whole sequence is the chat the evaluation prompt builder renders
        rendered = tokenizer.apply_chat_template(instance_messages(records[inst["tool"]], inst), tokenize=False)
        assert tokenizer.decode(ex["input_ids"]) == rendered
        n_expected = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in expected)
        assert ex["n_loss_tokens"] == n_expected
        for step in inst["steps"]:
            assert all(step["observation"] not in run for run in loss_runs(tokenizer, ex))


def test_spans_survive_a_template_that_injects_a_system_prompt(tokenizer):
    """SmolLM2's template adds a default system turn when there is none: spans still line up."""
    messages = [{"role": "user", "content": "Add 2 and 3."},
                {"role": "assistant", "content": "Thought: use the calculator\nAction: add\nAction Input: {\"a\": 2}"},
                {"role": "user", "content": "Observation: 5"},
                {"role": "assistant", "content": "Thought: done\nFinal Answer: 5"}]
    text, spans = assistant_char_spans(tokenizer, messages)
    assert "You are a helpful AI assistant named SmolLM" in text          # the injected default
    assert [text[a:b] for a, b in spans] == [messages[1]["content"] + END, messages[3]["content"] + END]


def test_overlong_instance_is_cut_after_a_whole_turn_and_counted(tokenizer, corpus):
    records, train, _ = corpus
    inst = next(i for i in train if len(i["steps"]) >= 3)
    full = build_example(tokenizer, records[inst["tool"]], inst, max_length=4096)
    turns = [t + END for t, _ in trajectory_turns(inst)]
    # room for the prompt and the first two turns, but not the third
    text, spans = assistant_char_spans(tokenizer, instance_messages(records[inst["tool"]], inst))
    upto_two = len(tokenizer(text[:spans[1][1]], add_special_tokens=False)["input_ids"])
    max_length = upto_two + 5
    ex = build_example(tokenizer, records[inst["tool"]], inst, max_length=max_length)
    assert ex["length"] == upto_two <= max_length
    assert ex["n_truncated"] == full["length"] - upto_two > 0
    assert ex["n_turns_kept"] == 2 and ex["n_turns"] == len(turns)
    assert loss_runs(tokenizer, ex) == turns[:2]                          # labels still aligned
    assert ex["input_ids"] == full["input_ids"][:upto_two]
    # the build report counts it
    examples, report = build_examples(tokenizer, records, [inst], max_length)
    assert report.n_truncated_examples == 1 and report.n_truncated_tokens == ex["n_truncated"]
    # a prompt that alone fills max_length leaves nothing to learn: dropped, with the reason
    short = build_example(tokenizer, records[inst["tool"]], inst, max_length=64)
    assert short["drop_reason"] and "max_length=64" in short["drop_reason"] and short["input_ids"] == []
    with pytest.raises(EmptyCorpusError, match="max_length=64"):
        build_examples(tokenizer, records, [inst], 64)


def test_unusable_instances_are_dropped_with_a_reason(tokenizer, corpus):
    records, train, _ = corpus
    stranger = {**train[0], "id": "x-1", "tool": "NoSuchTool"}
    rejected = {**train[1], "id": "x-2", "kept": False, "drop_reason": "too many errors"}
    empty = {**train[2], "id": "x-3", "steps": [], "final": None}
    examples, report = build_examples(tokenizer, records, [train[0], stranger, rejected, empty], 4096)
    assert report.n_examples == 1 and len(examples) == 1
    reasons = {d["id"]: d["reason"] for d in report.dropped}
    assert "NoSuchTool" in reasons["x-1"] and "too many errors" in reasons["x-2"]
    assert "no assistant turns" in reasons["x-3"]


def test_collator_pads_dynamically_or_to_a_fixed_length():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = DynamicPaddingCollator(pad_token_id=2)(feats)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    fixed = DynamicPaddingCollator(pad_token_id=2, pad_to=6)(feats)
    assert fixed["input_ids"].shape == (2, 6) and fixed["attention_mask"].sum().item() == 4
    with pytest.raises(ValueError, match="pad_to"):
        DynamicPaddingCollator(pad_token_id=2, pad_to=2)(feats)


def test_system_prefix_is_shared_by_a_tools_conversations(tokenizer, corpus):
    records, train, _ = corpus
    examples, _ = build_examples(tokenizer, records, train, 4096)
    by_tool = {}
    for ex in examples:
        assert 0 < ex["prefix_len"] < ex["length"]
        by_tool.setdefault(ex["group"], set()).add(tuple(ex["input_ids"][:ex["prefix_len"]]))
        assert all(l == IGNORE_INDEX for l in ex["labels"][:ex["prefix_len"]])
    assert all(len(prefixes) == 1 for prefixes in by_tool.values())    # one system turn per tool


def test_tool_grouped_sampler_batches_one_tool_at_a_time():
    groups = ["a"] * 5 + ["b"] * 4 + ["c"] * 3
    lengths = [100 + 7 * i for i in range(len(groups))]
    sampler = ToolGroupedSampler(groups, lengths, batch_size=2, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(len(groups)))
    batches = [order[i:i + 2] for i in range(0, len(order), 2)]
    mixed = [b for b in batches if len({groups[i] for i in b}) > 1]
    assert len(mixed) <= 1                                                 # only the leftovers mix
    assert order == list(ToolGroupedSampler(groups, lengths, 2, seed=0))   # seeded
    sampler.set_epoch(1)
    assert list(sampler) != order                                          # reshuffled each epoch


def test_synthetic_corpus_spreads_copies_over_tool_clones(corpus):
    spec = importlib.util.spec_from_file_location("_synthetic", FIXTURE.parents[2] / "benchmarks" / "_synthetic.py")
    synthetic = importlib.util.module_from_spec(spec)     # benchmark-only code, outside the package
    spec.loader.exec_module(synthetic)
    synthetic_corpus = synthetic.synthetic_corpus
    records, train, _ = corpus
    recs, insts = synthetic_corpus(records, train, 24, n_tools=6, seed=0)
    assert len(insts) == 24 and len(recs) == 6
    assert all(i["tool"] in recs and recs[i["tool"]]["Name"] == i["tool"] for i in insts)
    assert {len(i["steps"]) for i in insts} >= {1, 2}                      # varied lengths


# ------------------------------------------------------------------------------ bad input
def test_empty_corpus_is_a_clear_error(tokenizer, corpus, tmp_path):
    records, _, _ = corpus
    with pytest.raises(EmptyCorpusError, match="empty"):
        build_examples(tokenizer, records, [], 1024)
    with pytest.raises(EmptyCorpusError, match="empty"):
        train_lora(records, [], out_dir=tmp_path / "out")               # fails before loading a model
    empty = tmp_path / "corpus"
    empty.mkdir()
    (empty / "tools.json").write_text(json.dumps(list(records.values())))
    (empty / "train.jsonl").write_text("")
    with pytest.raises(EmptyCorpusError, match="train.jsonl has no instances"):
        run_training("tiny", corpus=empty, out=tmp_path / "out")


def test_missing_simulation_stage_names_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLALPACA_RUNS", str(tmp_path / "runs"))
    with pytest.raises(MissingStageError, match=r"stage 'simulation' has no output for profile 'tiny'.*02_simulation"):
        run_training("tiny")


def tiny_training_params() -> dict:
    from toolalpaca_utils.training import profile_parameters

    params = profile_parameters("tiny")
    params.pop("unseen_eval")
    return params


def fake_finished_run(out: Path, config: dict, launch: dict | None = None, data: Path | None = FIXTURE) -> Path:
    """A run folder as a finished run leaves it (adapter config, training log, launch record and
    the hash of the corpus ``data`` it was trained on; None: a folder without that record)."""
    from toolalpaca_utils.training.run import DATA_MARKER, _data_hash, training_data

    (out / "adapter").mkdir(parents=True)
    if data is not None:
        (out / DATA_MARKER).write_text(json.dumps({"sha256": _data_hash(training_data("tiny", corpus=data))}))
    (out / "adapter" / "adapter_config.json").write_text("{}")
    log = {"out_dir": str(out), "adapter_dir": str(out / "adapter"), "log_path": "", "config": config,
           "n_examples": 6, "n_eval_examples": 2, "data": {}, "global_step": 4, "epochs_done": 1.3,
           "train_loss": 1.5, "final_loss": 1.4, "eval_loss": 1.6, "steps": [], "session_steps": [1, 2, 3, 4],
           "evals": [], "tokens": 4000, "train_seconds": 20.0, "wall_seconds": 40.0, "cpu_seconds": 20.0,
           "threads": 8, "tokens_per_s": 200.0, "peak_rss_gb": 2.0, "peak_gpu_gb": None, "device": "cuda bf16",
           "resumed_from": None, "stats_from_previous_run": False}
    (out / "training_log.json").write_text(json.dumps(log))
    if launch is not None:
        (out / "launch.json").write_text(json.dumps(launch))
    return out


def test_a_finished_run_with_the_same_parameters_is_reused(tmp_path):
    """The notebook picks up a run trained elsewhere (e.g. `accelerate launch` on several GPUs)
    instead of resuming it; different parameters mean a new run."""
    from toolalpaca_utils.training import TrainConfig, _finished_run, profile_parameters

    params = tiny_training_params()
    cfg = TrainConfig(**params)
    out = fake_finished_run(tmp_path / "training", cfg.to_dict())
    reused = run_training("tiny", corpus=FIXTURE, out=out, **params)       # no model is loaded
    assert reused.stats_from_previous_run and reused.tokens == 4000 and reused.device == "cuda bf16"
    assert _finished_run(out, TrainConfig(**{**params, "num_threads": 2})) is not None   # threads aside
    assert _finished_run(out, TrainConfig(**{**params, "learning_rate": 1.0})) is None   # would train anew
    assert _finished_run(out, TrainConfig(**{**params, "train_data": "other.json"})) is None   # other data
    assert _finished_run(out, TrainConfig(**{**params, "prompt_format": "chat"})) is None
    older = {k: v for k, v in cfg.to_dict().items() if k not in ("train_data", "prompt_format")}
    log = json.loads((out / "training_log.json").read_text())
    (out / "training_log.json").write_text(json.dumps({**log, "config": older}))   # a log from before them
    assert _finished_run(out, cfg) is not None


def test_a_command_line_run_with_other_settings_is_never_overwritten_in_process(tmp_path):
    """The documented handoff: `accelerate launch ... --learning_rate 2e-5` trains, then the
    notebook (the profile's 5e-3) must neither reuse that adapter as its own nor retrain over it."""
    from toolalpaca_utils.training import COMMAND_LINE, FinishedRunDiffersError, TrainConfig

    params = tiny_training_params()
    shell = TrainConfig(**{**params, "learning_rate": 2e-5, "epochs": 3})
    launch = {"by": COMMAND_LINE, "world_size": 4, "command": "python -m toolalpaca_utils.training --profile tiny"
              " --learning_rate 2e-5 --epochs 3"}
    out = fake_finished_run(tmp_path / "training", shell.to_dict(), launch)
    before = (out / "training_log.json").read_text()
    with pytest.raises(FinishedRunDiffersError) as err:
        run_training("tiny", corpus=FIXTURE, out=out, **params)
    msg = str(err.value)
    assert "learning_rate: 2e-05 there, 0.005 here" in msg and "epochs: 3 there, 1 here" in msg
    assert "4 process(es)" in msg and "--learning_rate 2e-5" in msg and "03_training" in msg
    assert "lora_r" not in msg                              # only the keys that differ are named
    assert (out / "training_log.json").read_text() == before   # nothing overwritten
    # with the same settings the notebook reuses it, whoever trained it
    reused = run_training("tiny", corpus=FIXTURE, out=out, **{**params, "learning_rate": 2e-5, "epochs": 3})
    assert reused.stats_from_previous_run


def test_a_finished_run_on_other_training_data_is_never_reused(tmp_path):
    """The same settings and corpus path, new content (the corpus simulated again): the adapter
    was trained on the old data, so it is neither reused nor resumed; a folder that does not
    record its data counts as other data."""
    import shutil

    from toolalpaca_utils.training import COMMAND_LINE, FinishedRunDiffersError, TrainConfig
    from toolalpaca_utils.training.run import _data_hash, _reuse_finished_run, training_data

    params = tiny_training_params()
    corpus = shutil.copytree(FIXTURE, tmp_path / "corpus")
    out = fake_finished_run(tmp_path / "training", TrainConfig(**params).to_dict(), data=corpus)
    current = _data_hash(training_data("tiny", corpus=corpus))
    assert _reuse_finished_run(out, TrainConfig(**params), "notebook", current)[0] is not None
    train = corpus / "train.jsonl"
    train.write_text("\n".join(train.read_text().splitlines()[:-1]) + "\n")  # simulated again: one row fewer
    changed = _data_hash(training_data("tiny", corpus=corpus))
    assert changed != current
    assert _reuse_finished_run(out, TrainConfig(**params), "notebook", changed) == (None, False)
    (out / "launch.json").write_text(json.dumps({"by": COMMAND_LINE, "world_size": 1}))
    with pytest.raises(FinishedRunDiffersError, match=r"training data \(sha256\)"):
        run_training("tiny", corpus=corpus, out=out, **params)
    unrecorded = fake_finished_run(tmp_path / "old", TrainConfig(**params).to_dict(), data=None)
    assert _reuse_finished_run(unrecorded, TrainConfig(**params), "notebook", current) == (None, False)


def test_a_run_that_starts_over_never_resumes_the_checkpoints_before_it(tmp_path, monkeypatch):
    """An unfinished run's checkpoints carry on only under the data and settings they were made
    from; a run that starts over removes them first, so that an interruption before its own first
    checkpoint cannot resume the old run."""
    import shutil

    from toolalpaca_utils.training import TrainConfig, run as run_mod
    from toolalpaca_utils.training.run import _begin_run, _data_hash, _reuse_finished_run, training_data

    params = tiny_training_params()
    cfg = TrainConfig(**params)
    corpus = shutil.copytree(FIXTURE, tmp_path / "corpus")
    data = _data_hash(training_data("tiny", corpus=corpus))
    out = tmp_path / "training"
    (out / "checkpoints" / "checkpoint-7").mkdir(parents=True)                # interrupted: no log, no adapter
    _begin_run(out, data, cfg, resume=True)
    assert (out / "checkpoints" / "checkpoint-7").is_dir()                   # resuming keeps them
    assert _reuse_finished_run(out, cfg, "notebook", data) == (None, True)
    assert _reuse_finished_run(out, TrainConfig(**{**params, "num_threads": 3}), "notebook", data) == (None, True)
    assert _reuse_finished_run(out, TrainConfig(**{**params, "learning_rate": 1.0}), "notebook", data) == (None, False)
    assert _reuse_finished_run(out, cfg, "notebook", "other data") == (None, False)
    (out / "training_data.json").write_text(json.dumps({"sha256": data}))     # a record without the settings
    assert _reuse_finished_run(out, cfg, "notebook", data) == (None, False)

    seen = {}

    def fake_train_lora(records, train, eval_sets, *, out_dir, config, resume, progress):
        seen.update(resume=resume, checkpoints=sorted(p.name for p in (out_dir / "checkpoints").glob("*")))
        raise KeyboardInterrupt  # interrupted before its first checkpoint

    monkeypatch.setattr(run_mod, "train_lora", fake_train_lora)
    with pytest.raises(KeyboardInterrupt):
        run_training("tiny", corpus=corpus, out=out, **{**params, "learning_rate": 1.0})
    assert seen == {"resume": False, "checkpoints": []}
    recorded = json.loads((out / "training_data.json").read_text())
    assert recorded["sha256"] == data and recorded["settings"]["learning_rate"] == 1.0
    with pytest.raises(KeyboardInterrupt):                                  # the same run again resumes
        run_training("tiny", corpus=corpus, out=out, **{**params, "learning_rate": 1.0})
    assert seen["resume"] is True


def test_a_key_older_runs_lack_counts_as_its_default(tmp_path):
    from toolalpaca_utils.training import TrainConfig, _finished_run, settings_diff

    cfg = TrainConfig(**tiny_training_params())
    old = {k: v for k, v in cfg.to_dict().items() if k != "attn_implementation"}   # a log from before the key
    assert settings_diff(old, cfg) == {}
    assert _finished_run(fake_finished_run(tmp_path / "t", old), cfg) is not None
    assert settings_diff(old, TrainConfig(**{**tiny_training_params(), "attn_implementation": "eager"})) == {
        "attn_implementation": ("", "eager")}


def test_the_launch_is_recorded_next_to_the_run(tmp_path, monkeypatch):
    from toolalpaca_utils.training import COMMAND_LINE, run as run_mod

    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setattr(run_mod.sys, "argv", ["x", "--profile", "gpu", "--epochs", "2"])
    run_mod._record_launch(tmp_path, COMMAND_LINE)
    assert json.loads((tmp_path / "launch.json").read_text()) == {
        "by": COMMAND_LINE, "world_size": 8, "command": "python -m toolalpaca_utils.training --profile gpu --epochs 2"}


def test_attn_implementation_reaches_the_model(monkeypatch):
    """The profile's attn_implementation is what transformers is asked for ("" asks nothing)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolalpaca_utils.llm import hf
    from toolalpaca_utils.training import weights

    seen = []

    def fake_from_pretrained(path, **kwargs):
        seen.append(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(hf, "hf_checkpoint", lambda model: "/no/such/checkpoint")   # nothing is read
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda path, **kw: None)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    for attn in ("flash_attention_2", ""):
        with pytest.raises(RuntimeError, match="stop here"):
            weights._load_base("smollm2-135m-instruct", "cuda", attn_implementation=attn)
    assert seen[0]["attn_implementation"] == "flash_attention_2" and "attn_implementation" not in seen[1]
    assert str(seen[0]["dtype"]) == "torch.bfloat16"
    assert weights.weights_dtype("cuda", bf16=False) == "float32" and weights.weights_dtype("cpu") == "float32"


def test_unknown_hyper_parameter_is_rejected(corpus, tmp_path):
    records, train, _ = corpus
    with pytest.raises(TypeError, match="lora_rank"):
        train_lora(records, train, out_dir=tmp_path, lora_rank=4)


# ------------------------------------------------------------------------------ with the model
SMALL = dict(lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_last_layers=4, learning_rate=1e-2,
             per_device_batch_size=1, grad_accum=1, warmup=0, lr_scheduler="constant", max_length=1024,
             num_threads=1, seed=0)


@pytest.fixture(scope="module")
def base(tokenizer):
    """The embedded model, loaded once; each training run gets a deep copy."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolalpaca_utils.llm.registry import resolve_model

    torch.set_num_threads(1)  # on a shared 2-core machine one thread is the fastest
    spec = resolve_model()
    model = AutoModelForCausalLM.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@pytest.mark.slow
def test_assistant_loss_equals_the_stock_loss(base, corpus):
    """Logits only at label positions, and one tool's shared system prefix computed once, give
    the stock causal-LM loss and the same gradients."""
    import torch
    from peft import LoraConfig, get_peft_model

    records, train, _ = corpus
    model, tok = base
    shelf = sorted((i for i in train if i["tool"] == "ShelfSearch"), key=lambda i: len(json.dumps(i)))[:2]
    pantry = min((i for i in train if i["tool"] == "PantryChef"), key=lambda i: len(json.dumps(i)))
    # cut after the first step (the prompt is ~350 tokens), to keep the test cheap
    examples, _ = build_examples(tok, records, [shelf[0], pantry, shelf[1]], 440)
    assert all(ex["n_truncated"] > 0 and ex["n_loss_tokens"] > 0 for ex in examples)
    batch = DynamicPaddingCollator(tok.pad_token_id)(examples)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], layers_to_transform=[28, 29], init_lora_weights=False))
    with torch.no_grad():
        stock = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"]).loss
    grads = {}
    for share in (False, True):
        peft_model.zero_grad()
        loss = assistant_loss(peft_model, batch, share_prefix=share)
        loss.backward()
        assert torch.allclose(loss.detach(), stock, atol=1e-5), (share, loss.item(), stock.item())
        grads[share] = torch.cat([p.grad.flatten() for p in peft_model.parameters() if p.requires_grad])
    assert torch.allclose(grads[True], grads[False], atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def overfit(base, corpus, tmp_path_factory):
    """A few optimisation steps on one fixed instance (the shortest), with a checkpoint at the end."""
    records, train, _ = corpus
    shortest = min(train, key=lambda i: len(json.dumps(i)))
    out = tmp_path_factory.mktemp("overfit")
    model, tok = base
    result = train_lora(records, [shortest], [], out_dir=out, model=copy.deepcopy(model), tokenizer=tok,
                        max_steps=4, save_steps=4, keep_model=True, **SMALL)
    return result, shortest, out


@pytest.mark.slow
def test_a_few_steps_on_a_fixed_batch_reduce_the_loss(overfit):
    result, _inst, out = overfit
    losses = [s["loss"] for s in result.steps]
    assert result.global_step == 4 and len(losses) == 4
    assert losses[-1] < 0.6 * losses[0], losses
    log = json.loads((out / "training_log.json").read_text())
    assert log["tokens"] == result.tokens > 0 and log["tokens_per_s"] > 0 and log["peak_rss_gb"] > 0
    assert [s["loss"] for s in log["steps"]] == losses
    assert log["final_loss"] == pytest.approx(sum(losses[-3:]) / 3)


@pytest.mark.slow
def test_adapter_reloads_to_identical_logits(overfit, base, corpus):
    import torch
    from peft import PeftModel

    from toolalpaca_utils.llm import hf

    result, inst, _out = overfit
    records, _, _ = corpus
    model, tok = base
    adapter = Path(result.adapter_dir)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer_config.json").is_file()
    text = tok.apply_chat_template(instance_messages(records[inst["tool"]], inst)[:2], tokenize=False,
                                   add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    trained = result.model.eval()
    reloaded = PeftModel.from_pretrained(copy.deepcopy(model), str(adapter)).eval()
    with torch.no_grad():
        want = trained(**enc).logits
        got = reloaded(**enc).logits
        untouched = model(**enc).logits
    assert torch.equal(want, got)
    assert not torch.allclose(want, untouched)                            # the adapter did something
    # the loader every export uses gives the same model
    with torch.no_grad():
        assert torch.equal(hf.peft_model(copy.deepcopy(model), str(adapter)).eval()(**enc).logits, want)


@pytest.mark.slow
def test_training_resumes_from_its_last_checkpoint(overfit, base, corpus):
    result, inst, out = overfit
    records, _, _ = corpus
    model, tok = base
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    more = train_lora(records, [inst], [], out_dir=out, model=copy.deepcopy(model), tokenizer=tok,
                      max_steps=5, save_steps=4, **SMALL)
    assert more.resumed_from and more.resumed_from.endswith("checkpoint-4")
    assert more.global_step == 5
    assert more.session_steps == [5]                                       # only the new step ran
    assert [s["step"] for s in more.steps] == [1, 2, 3, 4, 5]               # the log spans the whole run
    assert more.steps[-1]["loss"] < result.steps[0]["loss"]               # it went on from there
    assert (out / "checkpoints" / "checkpoint-5").is_dir()


def test_the_benchmarks_development_set_is_what_notebook_03_holds_out():
    """Benchmarks choose levers on ``heldout_instances``: the very instances the trainer keeps out of
    training under the cpu profile, so a lever is never chosen on data the adapter saw."""
    from toolalpaca_utils.training import TrainConfig
    from toolalpaca_utils.training.run import heldout_instances, profile_parameters
    from toolalpaca_utils.training.train import _eval_sets

    train = load_split(FIXTURE, "train")
    params = {k: v for k, v in profile_parameters("cpu").items() if k != "unseen_eval"}  # run_training's own key
    fit, eval_sets = _eval_sets(train, None, TrainConfig(**params))
    held = heldout_instances(FIXTURE)
    assert held and held == eval_sets["heldout"]
    assert not {x["id"] for x in held} & {x["id"] for x in fit}
