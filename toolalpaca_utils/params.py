"""Every notebook parameter, defined once: its type, its default and a one-line reason.

One dataclass per notebook (:data:`NOTEBOOK_PARAMS`). From it come:
- the notebook's ``parameters`` cell (:func:`parameters_cell`; ``python -m toolalpaca_utils.params
  --write`` rewrites the cells, and a test checks they match);
- the validation of the profiles (:func:`validate_profile`: an unknown key or a wrong type stops
  with the profile, the section and the key named);
- the stage command lines (:func:`parse_stage_args`, built by transformers' ``HfArgumentParser``).

The defaults are the ``cpu`` profile's (``make book``); ``notebooks/profiles/*.yaml`` override them.
One sentinel throughout: 0 (a number) or "" (a string) means "all", "none" or "the default".
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def p(default: Any, why: str, choices: Sequence[str] | None = None) -> Any:
    """A parameter: its default and the one-line reason shown in the notebook and ``--help``;
    ``choices``, when given, are the only values it takes (checked in profiles, notebooks and
    command lines alike)."""
    metadata = {"help": why, **({"choices": list(choices)} if choices else {})}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=metadata)
    return field(default=default, metadata=metadata)


class ProfileError(ValueError):
    """A profile names a key no notebook parameter has, or gives it a value of the wrong type."""


@dataclass
class Common:
    """The ``common`` section of a profile: injected into every notebook."""
    profile: str = p("cpu", "tiny (tests) | cpu (make book) | gpu; picks notebooks/profiles/<profile>.yaml")
    teacher_endpoint: str = p("embedded", '"embedded" (llama.cpp on 127.0.0.1) or an OpenAI-compatible base URL')
    teacher_model: str = p("smollm2-135m-instruct", "the teacher: a registry name, a local path or a served model name")
    teacher_dialect: str = p("llama_cpp", "structured-output dialect of the endpoint: llama_cpp | openai (OpenAI, vLLM)")
    student_model: str = p("smollm2-135m-instruct", "the base model that receives the LoRA adapter")
    student_endpoint: str = p("embedded", '"embedded" (llama.cpp + GGUF LoRA on 127.0.0.1) or a vLLM URL (book/gpu.md)')
    student_dialect: str = p("llama_cpp", "structured-output dialect of the student endpoint: llama_cpp | openai")
    seed: int = p(0, "every sampled choice and generation is seeded from it")
    prompt_format: str = p("react", "react (the papers' ReAct text) | chat (the tokenizer's tool-calling chat, "
                           "training template): 03 trains and 04 evaluates in it", choices=("react", "chat"))


@dataclass
class ToolsetParams(Common):
    teacher_replicas: int = p(2, "embedded servers (one core each): tools are documented in parallel")
    n_tools: int = p(30, "catalogue entries to document")
    max_retries: int = p(1, "extra attempts per entry, with other seeds")
    prefer_no_auth: bool = p(True, "sample APIs that need no key first: the simulated user has none")
    include_categories: Optional[list[str]] = p(None, 'only these catalogue categories, e.g. ["Weather", "Books"]')
    exclude_categories: Optional[list[str]] = p(None, "leave these catalogue categories out")
    max_functions: int = p(2, "functions per tool the teacher may write")
    min_functions: int = p(1, "a tool with fewer is rejected")
    min_parameters: int = p(1, "parameters per function, at least")
    max_parameters: int = p(2, "parameters per function, at most")
    max_output_fields: int = p(2, "response fields per function, at most")
    description_max_chars: int = p(80, "a parameter description longer than this is cut by the grammar")
    intro_max_chars: int = p(400, "the tool introduction's length bound")
    intro_max_tokens: int = p(160, "token budget of the introduction call")
    functions_max_tokens: int = p(600, "token budget of the functions call")
    include_real_tools: bool = p(True, "add the real tools' records (their OpenAPI is the documentation)")
    blueprint_tools: int = p(0, "code-written training tools added (toolset.blueprints: 3-4 functions, meaningful "
                             "parameters, natural request templates); 0: the teacher's tools only")
    progress: bool = p(True, "progress bar while documenting")


@dataclass
class SimulationParams(Common):
    teacher_replicas: int = p(2, "embedded servers (one core each); tools are simulated in parallel")
    instructions_per_tool: int = p(5, "requests the user agent writes per tool")
    instructions_per_blueprint_tool: int = p(0, "requests per code-written tool (3-4 functions to choose among; "
                                               "code writes them, no teacher tokens); 0: instructions_per_tool")
    strategy: str = p("call-first", "call-first (values, then the request) | instruction-first (the paper's)")
    mode: str = p("constrained", "constrained (JSON step schema) | free (ReAct text, the paper's)")
    scaffold: bool = p(True, "free mode only: worked calls in the teacher's prompt, answer from a short chat")
    max_turns: int = p(3, "ReAct turns (tool calls) per episode before it is cut")
    values: str = p("typed", "call-first values: typed (code: enums, real data lists, Faker) | teacher (the paper's)")
    teacher_requests: bool = p(False, "the teacher writes each request first, kept if it says every value (135M: 0 of 24)")
    request_fallback: str = p("bank", "if the teacher request loses a value: bank (many frames) | template | empty (drop)")
    executor: str = p("schema", "simulated responses: schema (code fills the response schema) | llm (the paper's)")
    answers: str = p("grounded", "grounded (the teacher's if it quotes the response, else code states it) | teacher")
    n_eval_tools: int = p(6, "tools held out for evaluation: never seen in training")
    eval_tools: list[str] = p([], "[]: n_eval_tools drawn with the seed; names: these held out (a lever "
                              "that adds tools keeps its test set)")
    max_tools: int = p(0, "0: every catalogue tool of the toolset")


@dataclass
class TrainingParams(Common):
    corpus_dir: str = p("", "a corpus folder; \"\": runs/<profile>/simulation, written by 02_simulation")
    train_data: str = p("", '"": the corpus above; else a ToolAlpaca-format instance file (.json), a messages '
                        "+ tools dataset folder or a chat .jsonl (read with formats.read_training_data)")
    lora_r: int = p(8, "LoRA rank")
    lora_alpha: int = p(16, "LoRA scale numerator (alpha / r multiplies the update)")
    lora_dropout: float = p(0.05, "dropout on the LoRA input; 0 for a few steps")
    lora_last_layers: int = p(8, "LoRA on the last N decoder layers only (0: every layer)")
    target_modules: list[str] = p(TARGET_MODULES, "the projections that get LoRA matrices")
    learning_rate: float = p(3e-3, "LoRA on a 135M model takes a high rate; 2e-4 for 1B+")
    warmup: float = p(0.0, "warm-up share of the steps (< 1) or number of steps")
    epochs: float = p(1, "passes over the training conversations")
    max_train_steps: int = p(0, "optimizer steps (0: as many as `epochs` take)")
    per_device_batch_size: int = p(4, "conversations per forward pass")
    grad_accum: int = p(2, "forward passes per optimizer step")
    max_length: int = p(1024, "longer conversations are cut after their last whole step that fits")
    eval_fraction: float = p(0.1, "held-out share of the training conversations (same tools)")
    unseen_eval: bool = p(False, "also report the loss on the evaluation tools' conversations")
    num_threads: int = p(1, "CPU threads, 1 is robust on a shared machine (0: torch's default)")
    gradient_checkpointing: bool = p(False, "recompute activations in backward: less memory, ~30% slower")
    bf16: Optional[bool] = p(None, "None: bf16 on a GPU or CPU that has it; False: fp32")
    attn_implementation: str = p("", '"": transformers\' default (sdpa); "flash_attention_2" on a GPU with flash-attn')


@dataclass
class EvaluationParams(Common):
    teacher_replicas: int = p(2, "simulated tools and the judge: this many requests in flight")
    max_turns: int = p(3, "ReAct turns per evaluated episode")
    max_items_simulated: int = p(0, "0: all")
    max_items_real: int = p(40, "items of the hand-written real-tool set (0: all)")
    eval_file: str = p("", "optional ToolAlpaca-format eval file (Golden_Answers)")
    run_judge: bool = p(True, "the reference's LLM-judge protocol next to the deterministic metrics")
    judge_max_items: int = p(0, "verdicts per set and model, spread over the tools (0: every instance)")
    student_decoding: list[str] = p(["free", "constrained"], "free: ReAct text, as trained; constrained: each "
                                    "step decoded under the tool's JSON schema; grounded: constrained, and the first "
                                    "call's free strings are values the request says; retrieved: grounded, and the "
                                    "first call's function is the one a sentence embedder finds closest to the request",
                                    choices=("free", "constrained", "grounded", "retrieved"))  # agents.episode.MODES
    tool_choice: str = p("auto", 'constrained decoding, as OpenAI\'s tool_choice: "required": the first step is a '
                         "call (every request of these sets needs a tool); auto: it may answer at once",
                         choices=("auto", "required"))
    thought: str = p("free", "constrained decoding's thoughts: free (any text) | documented (the corpus's own lines: "
                     "before a call the function's documentation line, before an answer the fixed one; the line "
                     "chosen picks the step)",
                     choices=("free", "documented"))  # agents.episode.THOUGHTS
    student_replicas: int = p(2, "student engine servers (one core each); remote: episodes in flight")


@dataclass
class DiversityParams(Common):
    teacher_replicas: int = p(2, "simulated tools and the judge: this many requests in flight")
    n_tools: list[int] = p([4, 8, 16], "the points of the curve (capped by the training tools available)")
    n_instances: int = p(0, "0: as many as the smallest point can hold")
    seeds: list[int] = p([0], "more than one seed shows run-to-run spread")
    max_train_steps: int = p(30, "identical optimisation steps for every point")
    per_device_batch_size: int = p(4, "conversations per forward pass")
    max_length: int = p(1024, "longer conversations are cut after their last whole step")
    max_items_simulated: int = p(0, "unseen simulated items per point (0: all)")
    max_items_real: int = p(24, "real-tool items per point (0: all)")
    max_turns: int = p(3, "ReAct turns per evaluated episode")
    decoding: str = p("free", "how every point (and the base model) is decoded, as one of notebook 04's rows: free | "
                      "constrained | grounded", choices=("free", "constrained", "grounded"))
    tool_choice: str = p("auto", 'constrained decoding: "required": the first step is a call; auto: it may answer '
                         "at once", choices=("auto", "required"))
    thought: str = p("free", "constrained decoding's thoughts: free | documented (notebook 04's thought)",
                     choices=("free", "documented"))
    student_replicas: int = p(2, "student engine servers (one core each); remote: episodes in flight")


@dataclass
class SteParams(Common):
    teacher_replicas: int = p(2, "embedded explorer servers (one core each): tools are explored in parallel")
    start_from_adapter: str = p("training", '"": student_model itself; "training": notebook 03\'s adapter '
                                            "merged in; or the path of any LoRA adapter")
    tools: list[str] = p([], "real tools to explore ([]: all ten, in catalogue order)")
    n_tools: int = p(0, "only the first n of them (0: all)")
    episodes: int = p(2, "exploration episodes per tool (long-term memory carries across them)")
    trials: int = p(2, "trials per episode (short-term memory carries across them)")
    max_turns: int = p(4, "ReAct turns per trial")
    explore_mode: str = p("constrained", '"constrained" (JSON step schema), "grounded" (and a call\'s strings and '
                          'choices are ones the request says) or "free" (ReAct text)',
                          choices=("constrained", "grounded", "free"))
    imagination: str = p("typed", "typed (code: values and a request frame) | call-first (model values) | query (paper)")
    examples_share: float = p(0.0, "typed imagination: share of string values taken from the examples the "
                              "parameter's documentation quotes (e.g. 'LHR'); 0: none")
    tool_choice: str = p("auto", 'constrained exploration and evaluation: "required": the first step is a call '
                         "(as OpenAI's tool_choice); auto: it may answer at once", choices=("auto", "required"))
    short_term_memory: bool = p(True, "earlier trials of the episode in the prompt")
    long_term_memory: bool = p(True, "earlier episodes' requests in the prompt")
    reflection: bool = p(True, "the explorer judges its own trial")
    diversity_tools: int = p(3, "tools explored a second time without long-term memory (0: skip)")
    paraphrases_per_query: int = p(1, "paraphrased copies of each kept request")
    max_examples_per_tool: int = p(12, "distilled examples kept per tool")
    answer_from_observation: bool = p(True, "a right call with an ungrounded answer: answer rewritten from the response")
    run_judge: bool = p(False, "an LLM judge filters the distilled examples")
    icl_k: int = p(2, "retrieved demonstrations per request")
    eval_per_tool: int = p(3, "single-call items of the real-tool eval set per tool (0: all)")
    eval_max_turns: int = p(1, "STE scores the first predicted call")
    eval_step_tokens: int = p(64, "every evaluated model's reply is cut here (the call fits)")
    eval_mode: str = p("free", "free (ReAct text, as STE decodes) | constrained (each step under the tool's JSON "
                       "schema, with tool_choice)", choices=("free", "constrained"))
    student_replicas: int = p(2, "student engine servers (one core each); remote: episodes in flight")
    ft_epochs: float = p(2.0, "fine-tuning passes over the distilled examples")
    ft_learning_rate: float = p(1e-3, "fine-tuning learning rate")
    ft_lora_last_layers: int = p(8, "LoRA on the last N layers only (0: all)")
    ft_batch_size: int = p(4, "fine-tuning conversations per step")
    ft_max_length: int = p(1024, "fine-tuning sequence bound")
    cl_batches: int = p(2, "continual learning: tool batches learnt one after another")
    replay_fraction: float = p(0.1, "share of earlier batches' examples replayed in each round")


@dataclass
class BfclParams(Common):
    categories: list[str] = p(["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"],
                              "BFCL's non-live Python AST categories and irrelevance (no network)")
    n_per_category: int = p(3, "questions per category: a fixed subset drawn with `seed` (0: every question)")
    max_turns: int = p(4, "ReAct steps per question: the student makes parallel calls one step at a time")
    step_tokens: int = p(128, "token budget of one step (a call and its arguments)")
    student_decoding: list[str] = p(["free", "constrained"], "free: ReAct text, as trained; constrained: each "
                                    "step decoded under the functions' JSON schema", choices=("free", "constrained"))
    student_replicas: int = p(2, "student engine servers (one core each); remote: episodes in flight")


NOTEBOOK_PARAMS: dict[str, type[Common]] = {
    "01_toolset": ToolsetParams, "02_simulation": SimulationParams, "03_training": TrainingParams,
    "04_evaluation": EvaluationParams, "05_diversity": DiversityParams, "06_ste": SteParams,
    "07_bfcl": BfclParams,
}


def params_class(notebook: str) -> type[Common]:
    """The dataclass of ``notebook`` (a stem such as ``02_simulation``, or a path)."""
    stem = Path(notebook).stem
    if stem not in NOTEBOOK_PARAMS:
        raise KeyError(f"no parameters are defined for notebook {stem!r}; known: {', '.join(NOTEBOOK_PARAMS)}")
    return NOTEBOOK_PARAMS[stem]


def defaults(notebook: str) -> dict[str, Any]:
    """Every parameter of ``notebook`` with its default."""
    return dataclasses.asdict(params_class(notebook)())


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def check_values(values: dict, cls: type[Common], where: str) -> None:
    """:class:`ProfileError` for a key ``cls`` does not have (with the closest name) or a wrong type."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            close = difflib.get_close_matches(key, hints, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ProfileError(f"{where}: unknown key {key!r}{hint}; the parameters of this notebook are "
                               f"defined in toolalpaca_utils/params.py ({cls.__name__})")
        if not _type_ok(value, hints[key]):
            raise ProfileError(f"{where}: {key!r} must be {_type_name(hints[key])}, got {value!r}")
        choices = next(f.metadata.get("choices") for f in dataclasses.fields(cls) if f.name == key)
        if choices and any(v not in choices for v in (value if isinstance(value, list) else [value])):
            what = "hold only" if isinstance(value, list) else "be one of"
            raise ProfileError(f"{where}: {key!r} must {what} {', '.join(map(repr, choices))}, got {value!r}")


def validate_profile(data: dict, source: str) -> None:
    """Check every section and key of a loaded profile file ``source`` against the dataclasses."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a mapping of sections, got {type(data).__name__}")
    for section, values in data.items():
        if section != "common" and section not in NOTEBOOK_PARAMS:
            close = difflib.get_close_matches(str(section), NOTEBOOK_PARAMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ProfileError(f"{source}: unknown section {section!r}{hint}; sections are 'common' and "
                               f"{', '.join(NOTEBOOK_PARAMS)}")
        if not isinstance(values or {}, dict):
            raise ProfileError(f"{source}, section {section}: expected key: value lines")
        check_values(values or {}, Common if section == "common" else NOTEBOOK_PARAMS[section],
                     f"{source}, section {section}")


# ---------------------------------------------------------------------------- notebook cells
def parameters_cell(notebook: str) -> str:
    """The source of ``notebook``'s parameters cell: one ``name = default  # reason`` line each."""
    cls = params_class(notebook)
    lines = [f"# Parameters: defined in toolalpaca_utils/params.py ({cls.__name__}); papermill overrides",
             "# them from notebooks/profiles/<profile>.yaml (the injected cell below, when run by the book)."]
    body = [(f"{f.name} = {_literal(getattr(cls(), f.name))}", f.metadata["help"]) for f in dataclasses.fields(cls)]
    lines += [f"{code:<34}  # {why}" for code, why in body]
    return "\n".join(lines)


def _literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list)) else repr(value)


def notebook_path(stem: str) -> Path:
    return NOTEBOOKS_DIR / f"{stem}.ipynb"


def write_parameter_cells(stems: Sequence[str] = tuple(NOTEBOOK_PARAMS)) -> list[str]:
    """Rewrite each notebook's parameters cell from its dataclass; the stems that changed."""
    import nbformat

    changed = []
    for stem in stems:
        path = notebook_path(stem)
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != parameters_cell(stem):
            cell.source = parameters_cell(stem)
            nbformat.write(nb, path)
            changed.append(stem)
    return changed


# ---------------------------------------------------------------------------- command lines
def parse_stage_args(notebook: str, argv: Sequence[str] | None = None, extra: Sequence[type] = ()) -> tuple:
    """``--profile NAME [--key value ...]`` for ``notebook``: the profile's values are the defaults,
    the flags override them; returns the parameters (and one instance per ``extra`` dataclass).

    Built by ``transformers.HfArgumentParser`` from the same dataclass as the parameters cell."""
    from transformers import HfArgumentParser

    from .profiles import load_profile

    cls = params_class(notebook)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", default=Common.profile)
    profile = pre.parse_known_args(argv)[0].profile
    prog = f"python -m toolalpaca_utils.{notebook.split('_', 1)[1]}"
    parser = HfArgumentParser([cls, *extra], allow_abbrev=False, prog=prog)
    parser.set_defaults(**load_profile(profile, notebook))
    *parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        names = [f.name for c in (cls, *extra) for f in dataclasses.fields(c)]
        flag = unknown[0].lstrip("-").replace("-", "_")
        close = difflib.get_close_matches(flag, names, n=1)
        parser.error(f"unknown option {unknown[0]!r}" + (f" (did you mean --{close[0]}?)" if close else ""))
    return tuple(parsed)


def collect(notebook: str, namespace: dict) -> dict:
    """The parameters of ``notebook`` as they stand in ``namespace`` (a notebook's ``globals()``),
    type-checked: a value injected with the wrong type stops here, with its name."""
    values = {f.name: namespace[f.name] for f in dataclasses.fields(params_class(notebook)) if f.name in namespace}
    check_values(values, params_class(notebook), f"notebook {notebook}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Notebook parameter cells from toolalpaca_utils/params.py")
    ap.add_argument("--write", action="store_true", help="rewrite the cells that differ")
    args = ap.parse_args(argv)
    if args.write:
        print("rewrote:", ", ".join(write_parameter_cells()) or "nothing")
        return 0
    for stem in NOTEBOOK_PARAMS:
        print(f"--- {stem}\n{parameters_cell(stem)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
