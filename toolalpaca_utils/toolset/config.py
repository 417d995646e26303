"""The bounds of what the teacher writes per tool, and the sampling temperature per attempt."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class GenerationConfig:
    """Bounds of what the model writes per tool (the grammar is the main lever on quality and
    cost with a small model: every bound here is enforced while generating)."""

    max_functions: int = 3
    min_functions: int = 1            # functions that must survive the function gates
    min_parameters: int = 1
    max_parameters: int = 3
    max_output_fields: int = 3
    description_max_chars: int = 100
    intro_max_tokens: int = 160
    intro_max_chars: int = 400
    functions_max_tokens: int = 800
    temperature: float = 0.3          # first attempt
    retry_temperature_step: float = 0.3
    max_temperature: float = 1.0

    def temperature_for(self, attempt: int) -> float:
        return round(min(self.max_temperature, self.temperature + attempt * self.retry_temperature_step), 3)

    @classmethod
    def from_params(cls, params: dict) -> "GenerationConfig":
        """Pick the fields of this class out of a notebook/profile parameter dict."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})
