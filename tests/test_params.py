"""Every parameter defined once: the dataclasses, the notebooks' parameters cells, the profiles
and the stage command lines agree, and a bad profile stops with the file, section and key named."""
from __future__ import annotations

import shutil

import nbformat
import pytest
import yaml

from toolalpaca_utils import params
from toolalpaca_utils.params import NOTEBOOK_PARAMS, ProfileError, collect, parameters_cell, parse_stage_args
from toolalpaca_utils.profiles import PROFILES, PROFILES_DIR, load_profile


@pytest.mark.parametrize("stem", list(NOTEBOOK_PARAMS))
def test_notebook_parameters_cell_is_generated_from_the_dataclass(stem):
    nb = nbformat.read(params.notebook_path(stem), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    assert cells[0].source == parameters_cell(stem), "run: python -m toolalpaca_utils.params --write"
    namespace: dict = {}
    exec(cells[0].source, {}, namespace)
    assert namespace == params.defaults(stem)


@pytest.mark.parametrize("stem", list(NOTEBOOK_PARAMS))
def test_papermill_reads_every_parameter_of_the_cell(stem):
    """papermill's own parser (``--help-notebook``, the check of injected names) reads each line:
    one it cannot read is reported as an unknown parameter at every run."""
    from papermill.translators import PythonTranslator

    found = [p.name for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(parameters_cell(stem)))]
    assert found == list(params.defaults(stem))


def test_every_notebook_of_the_book_has_a_parameters_dataclass():
    from toolalpaca_utils.book import discover_notebooks

    assert [p.stem for p in discover_notebooks()] == list(NOTEBOOK_PARAMS)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_key_is_a_parameter_of_its_notebook(profile):
    data = yaml.safe_load((PROFILES_DIR / f"{profile}.yaml").read_text())
    for stem in NOTEBOOK_PARAMS:
        values = load_profile(profile, stem)           # validates every section and key
        assert set(values) == set(params.defaults(stem))
        for key, value in (data.get(stem) or {}).items():
            assert values[key] == value


def _copy_of_cpu(tmp_path, edit) -> str:
    path = tmp_path / "mine.yaml"
    shutil.copy(PROFILES_DIR / "cpu.yaml", path)
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_misspelt_key_stops_with_file_section_and_key(tmp_path):
    path = _copy_of_cpu(tmp_path, lambda d: d["01_toolset"].update(n_tool=450))
    with pytest.raises(ProfileError, match=r"mine\.yaml, section 01_toolset: unknown key 'n_tool' \(did you mean 'n_tools'\?\)"):
        load_profile(path, "02_simulation")          # any notebook: the whole file is checked


@pytest.mark.parametrize("right, wrong, section", [
    ("gradient_checkpointing: true", "gradient_checkpoint: true", "03_training"),
    ("n_instances: 2000", "n_instance: 2000", "05_diversity"),
])
def test_a_misspelt_key_in_a_copy_of_the_gpu_profile_is_named_with_the_right_one(tmp_path, right, wrong, section):
    """The file as a user edits it (comments kept): one key misspelt, the stage command line stops."""
    text = (PROFILES_DIR / "gpu.yaml").read_text()
    assert text.count(right) == 1
    path = tmp_path / "gpu-mine.yaml"
    path.write_text(text.replace(right, wrong))
    bad, good = wrong.split(":")[0], right.split(":")[0]
    expected = rf"gpu-mine\.yaml, section {section}: unknown key '{bad}' \(did you mean '{good}'\?\)"
    with pytest.raises(ProfileError, match=expected):
        parse_stage_args("03_training", ["--profile", str(path)])


def test_a_wrong_type_and_an_unknown_section_are_named(tmp_path):
    path = _copy_of_cpu(tmp_path, lambda d: d["02_simulation"].update(max_turns="three"))
    with pytest.raises(ProfileError, match=r"section 02_simulation: 'max_turns' must be int, got 'three'"):
        load_profile(path, "02_simulation")
    path = _copy_of_cpu(tmp_path, lambda d: d.update({"03_train": {"lora_r": 4}}))
    with pytest.raises(ProfileError, match=r"unknown section '03_train' \(did you mean '03_training'\?\)"):
        load_profile(path)


def test_the_book_runner_stops_on_a_misspelt_key_before_running_anything(tmp_path):
    from toolalpaca_utils import book

    path = _copy_of_cpu(tmp_path, lambda d: d["common"].update(teacher_modle="x"))
    with pytest.raises(ProfileError, match="teacher_modle"):
        book.run_notebooks(path, book.discover_notebooks()[:1], out_dir=tmp_path / "out", log_output=False,
                           progress_bar=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_profile_given_as_a_path_runs_under_its_name(tmp_path):
    path = _copy_of_cpu(tmp_path, lambda d: None)
    assert load_profile(path, "01_toolset")["profile"] == "mine"


def test_stage_command_line_takes_profile_values_then_flags():
    (p,) = parse_stage_args("02_simulation", ["--profile", "tiny"])
    assert p.instructions_per_tool == load_profile("tiny", "02_simulation")["instructions_per_tool"]
    (p,) = parse_stage_args("02_simulation", ["--profile", "tiny", "--max_turns", "5", "--mode", "free"])
    assert (p.max_turns, p.mode, p.profile) == (5, "free", "tiny")
    with pytest.raises(SystemExit):
        parse_stage_args("02_simulation", ["--profile", "tiny", "--max_steps", "5"])


def test_collect_type_checks_what_the_notebook_holds():
    ns = {**params.defaults("03_training"), "lora_r": "8"}
    with pytest.raises(ProfileError, match="'lora_r' must be int"):
        collect("03_training", ns)
    assert collect("03_training", params.defaults("03_training")) == params.defaults("03_training")


def test_prompt_format_is_common_and_an_unknown_value_is_named_everywhere(tmp_path):
    """One setting for notebook 03 (trains) and 04 (evaluates); a value outside react | chat stops
    the profile, the notebook and the command line alike."""
    from toolalpaca_utils.training import train_config_kwargs

    assert params.defaults("03_training")["prompt_format"] == params.defaults("04_evaluation")["prompt_format"] == "react"
    path = _copy_of_cpu(tmp_path, lambda d: d["common"].update(prompt_format="chat"))
    assert train_config_kwargs(load_profile(path, "03_training"))["prompt_format"] == "chat"
    assert load_profile(path, "04_evaluation")["prompt_format"] == "chat"
    path = _copy_of_cpu(tmp_path, lambda d: d["common"].update(prompt_format="ChatML"))
    with pytest.raises(ProfileError, match=r"section common: 'prompt_format' must be one of 'react', 'chat', got 'ChatML'"):
        load_profile(path, "04_evaluation")
    with pytest.raises(ProfileError, match="'prompt_format' must be one of"):
        collect("04_evaluation", {**params.defaults("04_evaluation"), "prompt_format": "json"})
    (p,) = parse_stage_args("04_evaluation", ["--profile", "tiny", "--prompt_format", "chat"])
    assert p.prompt_format == "chat"
    with pytest.raises(SystemExit):
        parse_stage_args("04_evaluation", ["--profile", "tiny", "--prompt_format", "json"])


def test_a_decoding_list_holds_only_known_decodings(tmp_path):
    """A misspelt decoding in a profile's list stops the profile (before any model is served),
    and one a notebook does not support (grounded, for BFCL) too."""
    path = _copy_of_cpu(tmp_path, lambda d: d["04_evaluation"].update(student_decoding=["free", "grounding"]))
    with pytest.raises(ProfileError, match=r"'student_decoding' must hold only 'free', 'constrained', 'grounded', "
                                           r"'retrieved', got \['free', 'grounding'\]"):
        load_profile(path, "04_evaluation")
    assert load_profile(str(PROFILES_DIR / "cpu.yaml"), "04_evaluation")["student_decoding"][-2:] == ["grounded",
                                                                                                    "retrieved"]
    path = _copy_of_cpu(tmp_path, lambda d: d["07_bfcl"].update(student_decoding=["grounded"]))
    with pytest.raises(ProfileError, match="'student_decoding' must hold only 'free', 'constrained'"):
        load_profile(path, "07_bfcl")
