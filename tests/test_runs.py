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
