"""Stage 6: STE — simulated trial and error on the real tools.

The model learns a tool by *using* it. The parts, one submodule each, usable on their own:

* :mod:`.exploration` — imagine / execute / reflect trials with short- and long-term memory
  (:func:`explore`, :class:`ExploreConfig`), and what makes a request usable.
* :mod:`.distillation` — the deterministic filter, optional judge and paraphrases that turn
  trials into corpus examples (:func:`distill`, :class:`DistillConfig`).
* :mod:`.retrieval` — exploitation by in-context learning: :class:`SentenceEmbedder`,
  :class:`DemoRetriever`, :class:`ICLModel`, :func:`format_demonstration`.
* :mod:`.continual` — exploitation by fine-tuning (:func:`finetune`) and continual learning with
  replay (:func:`continual_learning`).
* :mod:`.metrics` — exploration statistics, query diversity, STE's metrics (:func:`ste_scores`),
  its eval items and the :class:`TokenCap` every evaluated model gets.
* :mod:`.common` — the helpers several of them share, and the notebook's bookkeeping.

Every public name is re-exported here, so ``from toolalpaca_utils import ste; ste.explore(...)``
works as before. To replace a name a function looks up (a test's monkeypatch), patch it on the
submodule that uses it (``ste.continual.finetune``), not here.
"""
from __future__ import annotations

from .common import YES_NO, cpu_seconds, save_jsonl
from .continual import (ContinualResult, continual_learning, finetune, replay_sample,
                        tool_batches)
from .distillation import (JUDGE_SCHEMA, DistillConfig, DistillResult, check_trial, distill, grounding_tokens,
                           judge_messages, make_instance, observation_answer, observation_values,
                           paraphrase_messages, paraphrase_problems, salient_tokens)
from .exploration import (ARGS_SYSTEM, IMAGINE_SYSTEM, LTM_HEADER, NAMES_API, PHRASE_SYSTEM, REFLECTION_QUESTION,
                          REFLECTION_SCHEMA, STM_HEADER, STM_IMAGINE_HINT, ExploreConfig, clean_query,
                          copies_worked_example, explore, explored_function, format_trial_memory, function_line,
                          imagination_messages, imagined_args_schema, long_term_block, phrasing_messages,
                          reflection_messages, render_trial, request_problems, run_trial, scoped_record,
                          short_term_block, trial_seed, trial_step_schema, trial_system_prompt, unsayable_names)
from .metrics import (STE_METRICS, TokenCap, correct_by_tool, distinct_n, diversity_table, exploration_stats,
                      query_diversity, ste_eval_items, ste_scores)
from .retrieval import (DEMO_HEADER, DemoRetriever, ICLModel, SentenceEmbedder, format_demonstration,
                        icl_system_prompt, minilm_dir)

STAGE = "ste"
NOTEBOOK = "06_ste"

__all__ = [
    "STAGE", "NOTEBOOK", "YES_NO", "cpu_seconds", "save_jsonl",
    # exploration
    "ARGS_SYSTEM", "IMAGINE_SYSTEM", "LTM_HEADER", "NAMES_API", "PHRASE_SYSTEM", "REFLECTION_QUESTION",
    "REFLECTION_SCHEMA", "STM_HEADER", "STM_IMAGINE_HINT", "ExploreConfig", "clean_query", "copies_worked_example",
    "explore", "explored_function", "format_trial_memory", "function_line", "imagination_messages",
    "imagined_args_schema", "long_term_block", "phrasing_messages", "reflection_messages", "render_trial",
    "request_problems", "run_trial", "scoped_record", "short_term_block", "trial_seed", "trial_step_schema",
    "trial_system_prompt", "unsayable_names",
    # distillation
    "JUDGE_SCHEMA", "DistillConfig", "DistillResult", "check_trial", "distill", "grounding_tokens",
    "judge_messages", "make_instance", "observation_answer", "observation_values", "paraphrase_messages",
    "paraphrase_problems", "salient_tokens",
    # retrieval and in-context learning
    "DEMO_HEADER", "DemoRetriever", "ICLModel", "SentenceEmbedder", "format_demonstration", "icl_system_prompt",
    "minilm_dir",
    # fine-tuning and continual learning
    "ContinualResult", "continual_learning", "finetune", "replay_sample", "tool_batches",
    # metrics
    "STE_METRICS", "TokenCap", "correct_by_tool", "distinct_n", "diversity_table", "exploration_stats",
    "query_diversity", "ste_eval_items", "ste_scores",
]
