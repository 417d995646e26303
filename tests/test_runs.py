"""Stage folders: resumable outputs are reused only while their inputs are unchanged."""
from toolalpaca_utils.runs import hash_path, reset_if_inputs_changed


def test_outputs_reset_when_inputs_change(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "weights.bin").write_bytes(b"v1")
    out = tmp_path / "evaluation"
    inputs = {"adapter": hash_path(adapter), "max_steps": 3}
    assert reset_if_inputs_changed(out, inputs) is False          # first run: nothing to keep
    (out / "base-real.jsonl").write_text('{"id": 1}\n')
    (out / "notes.txt").write_text("kept: not a result file")
    assert reset_if_inputs_changed(out, dict(inputs)) is True      # same inputs: resume
    assert (out / "base-real.jsonl").exists()
    (adapter / "weights.bin").write_bytes(b"v2")                   # a new adapter
    assert reset_if_inputs_changed(out, {"adapter": hash_path(adapter), "max_steps": 3}) is False
    assert not (out / "base-real.jsonl").exists() and (out / "notes.txt").exists()
    assert reset_if_inputs_changed(out, {"adapter": hash_path(adapter), "max_steps": 3}) is True


def test_resume_or_reset_refuses_or_clears_and_a_missing_field_counts_as_its_default(tmp_path):
    import json

    import pytest

    from toolalpaca_utils.runs import SettingsChangedError, resume_or_reset

    out = tmp_path / "run"
    assert resume_or_reset(out, {"a": 1, "b": 2}, marker="config.json", clear=(), refuse="other settings") is False
    (out / "train.jsonl").write_text('{"id": 1}\n')
    (out / "config.json").write_text(json.dumps({"a": 1}))          # written before "b" existed
    assert resume_or_reset(out, {"a": 1, "b": 2}, marker="config.json", clear=(), defaults={"b": 2},
                           refuse="other settings") is True
    assert json.loads((out / "config.json").read_text()) == {"a": 1, "b": 2}
    with pytest.raises(SettingsChangedError, match="other settings"):
        resume_or_reset(out, {"a": 2, "b": 2}, marker="config.json", clear=(), refuse="other settings")
    assert (out / "train.jsonl").exists()
    assert resume_or_reset(out, {"a": 2, "b": 2}, marker="config.json") is False   # reset instead
    assert not (out / "train.jsonl").exists()


def test_fingerprint_and_settings_compare_canonical_json():
    from toolalpaca_utils.runs import fingerprint, same_settings

    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) and len(fingerprint({})) == 16
    assert same_settings({"x": [1, 2], "threads": 4}, {"x": (1, 2), "threads": 2}, ignore=("threads",))
    assert not same_settings({"x": 1}, {"x": 1, "y": 0})
    assert same_settings({"x": 1}, {"x": 1, "y": 0}, defaults={"y": 0})


def test_jsonl_append_write_read_and_a_torn_line(tmp_path):
    from toolalpaca_utils.runs import append_jsonl, read_jsonl, write_jsonl

    path = tmp_path / "sub" / "rows.jsonl"
    append_jsonl(path, [{"id": 1}, {"id": "ü"}])
    with path.open("a") as fh:
        fh.write('{"id": 3, "cut')                                   # a killed writer
    assert read_jsonl(path) == [{"id": 1}, {"id": "ü"}] and read_jsonl(tmp_path / "none.jsonl") == []
    assert write_jsonl(path, [{"id": 2}]) == path and read_jsonl(path) == [{"id": 2}]
    assert not list(tmp_path.rglob("*.tmp"))


def test_run_parallel_orders_stops_early_and_raises():
    import time

    import pytest

    from toolalpaca_utils.parallel import run_parallel

    def work(i):
        time.sleep(0.02 * (5 - i % 5))           # later items finish first
        yield i

    for workers in (1, 3):
        kept = []
        assert run_parallel(range(10), work, kept.append, workers=workers, ordered=True, progress=False) is False
        assert kept == list(range(10))
        kept = []
        assert run_parallel(range(10), work, lambda r: kept.append(r) or r == 4, workers=workers, ordered=True,
                            progress=False) is True
        assert kept == [0, 1, 2, 3, 4]
    seen = []

    def streamed(i):
        for j in range(3):
            yield (i, j)

    run_parallel(range(4), streamed, seen.append, workers=2, progress=False)
    assert sorted(seen) == [(i, j) for i in range(4) for j in range(3)]
    assert all(seen.index((i, 0)) < seen.index((i, 1)) < seen.index((i, 2)) for i in range(4))

    def broken(i):
        if i == 2:
            raise RuntimeError("boom")
        yield i

    with pytest.raises(RuntimeError, match="boom"):
        run_parallel(range(6), broken, lambda r: None, workers=2, progress=False)
