"""The test of a VLM policy trained on preferences or rewards (DPO, GRPO): its greedy answers (and `samples` sampled
ones) to each test question, and those of the policy before training, scored by an `evaluator` (`(question, media,
answer)` -> `.fraction` of asked attributes stated right and `.hallucinated`, such as the synthetic world's oracle
`unified_reward.synthetic.oracle.score_answer`): `test/oracle_score`, `test/oracle_score_reference`,
`test/oracle_score_gain`, ... so one run reports before and after.

Before is the reference policy (a frozen copy, or the policy with its LoRA adapter off); a precomputed reference
keeps no model, and a full fine-tune without a copy has no before (NaN)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from unified_reward.data.schema import PreferenceRecord
from unified_reward.encoding.policy_pairs import encode_policy_prompt
from unified_reward.judging.text_generation import generate_texts
from unified_reward.models.adapters import has_adapter
from unified_reward.modules.metrics import ANSWER_METRICS, CollectedRows, after_before_metrics, answer_rows
from unified_reward.modules.reference import AdapterReference, FrozenCopyReference


class AnswerScoring(nn.Module):
    """A submodule of the policy's LightningModule, so that its collected rows follow the device and sync."""

    def __init__(
        self,
        processor,
        evaluator: Callable[[str, Any, str], Any],
        *,
        max_new_tokens: int = 24,
        batch_size: int = 16,
        samples: int = 0,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.processor, self.evaluator = processor, evaluator
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.samples, self.temperature = samples, temperature
        self.rows = CollectedRows(width=2 * len(ANSWER_METRICS))  # after, then before
        self._before: tuple[AdapterReference | FrozenCopyReference | None] | None = None

    @classmethod
    def when_given(cls, processor, evaluator, **options) -> AnswerScoring | None:
        """An `AnswerScoring` where there is an evaluator; None (nothing scored) where there is none."""
        return cls(processor, evaluator, **options) if evaluator is not None else None

    def answers(self, model: nn.Module, records: list[PreferenceRecord], samples: int = 0) -> list[str]:
        """Each record's greedy answer, or (`samples` > 0) that many sampled at `temperature`."""
        encoded = [encode_policy_prompt(self.processor, r) for r in records]
        sampling = {"num_samples": samples, "temperature": self.temperature} if samples else {}
        return generate_texts(
            model, self.processor, encoded, self.max_new_tokens, batch_size=self.batch_size, **sampling
        )

    def _rows(self, model: nn.Module, records: list[PreferenceRecord]) -> list[tuple[float, ...]]:
        k = self.samples
        sampled = self.answers(model, records, k) if k else []
        return answer_rows(self.evaluator, records, self.answers(model, records), sampled, k)

    def update(self, policy: nn.Module, reference: Any, records: list[PreferenceRecord]) -> None:
        """Scores `policy`'s answers to `records` and the answers before training (`reference`: the module's
        reference object, or None)."""
        after = self._rows(policy, records)
        if self._before is None:  # found once, not per test batch
            before = reference if isinstance(reference, FrozenCopyReference | AdapterReference) else None
            if before is None and has_adapter(policy):
                before = AdapterReference(policy)
            self._before = (before,)
        (before,) = self._before
        if before is not None:
            with before.model() as model:
                rows = self._rows(model, records)
        else:
            rows = [(np.nan,) * len(ANSWER_METRICS)] * len(records)
        self.rows.update([a + b for a, b in zip(after, rows, strict=True)])

    def metrics(self) -> dict[str, float]:
        """The test metrics over every rank's questions; empty when none was scored."""
        rows = self.rows.gathered()
        if not len(rows):
            return {}
        return {"test/answered": float(len(rows))} | after_before_metrics("test", ANSWER_METRICS, rows)
