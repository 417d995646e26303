"""Training from any format (issue 21, part 2): a ToolAlpaca-format instance file, a messages +
tools dataset or a chat JSONL is read into project instances (``formats.read_training_data``)
and trained on through the same entry point, prompts and loss mask as the corpus."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from toolalpaca_utils import formats
from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.formats import FormatError, read_training_data
from toolalpaca_utils.training import run_training, training_data

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus_small"
TOOLALPACA = FIXTURES / "toolalpaca_tools.json"


def _same_trajectories(a: list[dict], b: list[dict]) -> None:
    key = lambda i: (i["instruction"], [(s["action"], s["action_input"], s["observation"]) for s in i["steps"]],
                     (i["final"] or {}).get("answer"))
    assert [key(i) for i in a] == [key(i) for i in b]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The fixture corpus with its formats exported inside it, as notebook 02 writes them."""
    import shutil

    corpus = tmp_path_factory.mktemp("corpus") / "corpus_small"
    shutil.copytree(CORPUS, corpus)
    return corpus, formats.export_all(corpus)


def test_every_format_reads_back_the_corpus_instances(exported):
    corpus, paths = exported
    train = load_split(corpus, "train")
    for path, fmt in ((corpus, "corpus"), (paths["messages"], "messages"), (paths["openai_train"], "jsonl"),
                      (paths["toolalpaca_train"], "toolalpaca")):
        data = read_training_data(path)
        assert data.fmt == fmt and set(data.records) == set(load_tools(corpus)), fmt
        _same_trajectories(data.splits["train"], train)
    assert len(read_training_data(paths["messages"]).splits["eval"]) == 2


def test_the_toolalpaca_fixture_carries_its_own_records():
    data = training_data("tiny", train_data=str(TOOLALPACA))
    assert data.fmt == "toolalpaca" and len(data.splits["train"]) == 1
    inst = data.splits["train"][0]
    assert inst["tool"] == "Tiny Library" and inst["steps"] and inst["final"]


def test_a_malformed_toolalpaca_file_names_the_instance_and_field(tmp_path):
    records = json.loads(TOOLALPACA.read_text())
    del records[0]["Instances"][0]["intermediate_steps"][0][1]       # no observation
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    with pytest.raises(FormatError, match=r"instance 'tiny-library-ta-1'.*intermediate_steps\[0\]"):
        read_training_data(bad)
    bad.write_text("[{")
    with pytest.raises(FormatError, match="bad.json.*not JSON"):
        read_training_data(bad)


def test_chat_data_without_its_corpus_records_is_a_clear_error(exported, tmp_path):
    _corpus, paths = exported
    alone = tmp_path / "a" / "b" / "c" / "openai.jsonl"
    alone.parent.mkdir(parents=True)
    alone.write_text(paths["openai_train"].read_text())
    with pytest.raises(FileNotFoundError, match="no tools.json"):
        read_training_data(alone)
    line = json.loads(paths["openai_train"].read_text().splitlines()[0])
    line["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{not json"
    broken = paths["openai_train"].parent / "broken.jsonl"
    broken.write_text(json.dumps(line) + "\n")
    with pytest.raises(FormatError, match=r"line 1 of broken.jsonl.*messages\[2\].tool_calls\[0\].function.arguments"):
        read_training_data(broken)


def test_unknown_or_missing_data_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_training_data(tmp_path / "nothing.json")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="not training data"):
        read_training_data(tmp_path / "x.csv")


@pytest.mark.slow
def test_training_on_a_toolalpaca_instance_file_at_tiny_scale(tmp_path):
    """The training entry point on the repository's ToolAlpaca-format fixture: the instance is
    rendered with the project's prompt, trained on with the assistant-only mask, the adapter saved,
    and the training log names the file (a finished run on other data is not reused)."""
    result = run_training("tiny", train_data=str(TOOLALPACA), out=tmp_path / "out", resume=False,
                          max_steps=2, per_device_batch_size=1, grad_accum=1, lora_r=4, lora_alpha=8,
                          lora_dropout=0.0, lora_last_layers=2, learning_rate=1e-3, warmup=0, num_threads=1,
                          eval_fraction=0.0, bf16=False)
    assert result.global_step == 2 and result.n_examples == 1
    assert all(math.isfinite(s["loss"]) for s in result.steps)
    assert result.data["train"]["n_loss_tokens"] > 0 and not result.data["train"]["dropped"]
    assert (Path(result.adapter_dir) / "adapter_model.safetensors").is_file()
    assert json.loads(Path(result.log_path).read_text())["config"]["train_data"] == str(TOOLALPACA)
