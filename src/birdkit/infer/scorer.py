"""One process's interpreters for a plan: chunks at each encoder's rate -> probabilities [n, S], float64."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from birdkit.heads.card import base_logits, is_residual
from birdkit.heads.runner import HeadRunner, ModelsError
from birdkit.infer.plan import Plan
from birdkit.profile import StageTimes


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float64 sigmoid, kept float64 up to the written file: in float32 every logit above ~17 rounds to exactly 1
    (sigmoid(17.5) == 1.0f) and those rows would tie."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class Scorer:
    """The encoders and head runners of a plan, built once per process; :meth:`score` maps chunks to the
    submission columns. Columns no model predicts are NaN here; the parent fills them with the prior.

    ``built`` holds encoders the parent already built for this plan (by index), so they are not built twice.
    """

    def __init__(
        self, plan: Plan, times: StageTimes | None = None, built: dict[int, Any] | None = None
    ) -> None:
        self.plan = plan
        self.times = times if times is not None else StageTimes()
        built = built or {}
        t0 = time.perf_counter()
        with self.times.stage("setup"):
            self.encoders = [built[i] if i in built else e.build() for i, e in enumerate(plan.encoders)]
            col = {s: j for j, s in enumerate(plan.species)}
            self.heads: list[tuple[HeadRunner, int, np.ndarray, np.ndarray, bool]] = []
            for h, ei in plan.heads:
                runner = HeadRunner(h.path)
                if runner.input_dim != self.encoders[ei].embedding_dim:
                    raise ModelsError(
                        f"{h.path}: head takes {runner.input_dim}-d embeddings but encoder "
                        f"{plan.encoders[ei].name} gives {self.encoders[ei].embedding_dim}; re-export the head"
                    )
                species = h.card.species
                src = np.array([k for k, s in enumerate(species) if s in col], dtype=np.int64)
                dst = np.array([col[species[k]] for k in src], dtype=np.int64)
                self.heads.append((runner, ei, src, dst, h.card.output_kind == "logits"))
            self.index = np.asarray(plan.species_index, dtype=np.int64)
        self.setup_wall = time.perf_counter() - t0

    def score(self, chunks: dict[int, np.ndarray]) -> np.ndarray:
        n = next(iter(chunks.values())).shape[0]
        s = len(self.plan.species)
        outs: list[tuple[np.ndarray, np.ndarray]] = []
        with self.times.stage("encoder"):
            for spec, enc in zip(self.plan.encoders, self.encoders, strict=True):
                o = enc.embed(chunks[spec.sample_rate])
                outs.append((o.embeddings, o.logits_or_empty()))
        with self.times.stage("head"):
            if self.plan.passthrough is not None:
                logits = outs[self.plan.passthrough][1]
                probs = np.zeros((n, s), dtype=np.float64)  # unmapped species: sigmoid(-inf) = 0
                ok = self.index >= 0
                probs[:, ok] = sigmoid(logits[:, self.index[ok]])
                return probs
            total = np.zeros((n, s), dtype=np.float64)
            count = np.zeros(s, dtype=np.int64)
            for (h, _), (runner, ei, src, dst, is_logits) in zip(self.plan.heads, self.heads, strict=True):
                out = runner(outs[ei][0])
                if is_residual(h.card.head):  # a correction over the encoder's own logits
                    out = out + base_logits(h.card.head, outs[ei][1])
                out = out[:, src]
                total[:, dst] += sigmoid(out) if is_logits else out
                count[dst] += 1
            with np.errstate(invalid="ignore", divide="ignore"):
                probs = total / count
            probs[:, count == 0] = np.nan
            return probs
