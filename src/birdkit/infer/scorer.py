"""One process's interpreters for a plan: chunks at each encoder's rate -> probabilities [n, S], float64.

:meth:`Scorer.raw` gives every model's own output (:class:`~birdkit.infer.ensemble.Raw`); :meth:`Scorer.score`
combines them as the plan's post-processing says (blend, ensemble: infer/ensemble.py), the one combination
`birdkit tune` validated.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from birdkit.heads.card import base_logits, is_residual
from birdkit.heads.runner import HeadRunner, ModelsError
from birdkit.infer.ensemble import Member, Raw, combine, sigmoid
from birdkit.infer.plan import Plan
from birdkit.profile import StageTimes

__all__ = ["Scorer", "sigmoid"]


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
        raw = self.raw(chunks)
        with self.times.stage("head"):
            return combine(self.plan.postprocess, raw)

    def raw(self, chunks: dict[int, np.ndarray]) -> Raw:
        """Each head's output on the submission columns (NaN where it lacks a species) with its encoder's own
        logits under it, or the passthrough encoder's logits (-inf where it lacks a species)."""
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
                full = np.full((n, s), -np.inf, dtype=np.float64)  # unmapped species: sigmoid(-inf) = 0
                ok = self.index >= 0
                full[:, ok] = logits[:, self.index[ok]]
                return Raw(passthrough=full)
            members = []
            for (h, _), (runner, ei, src, dst, is_logits) in zip(self.plan.heads, self.heads, strict=True):
                out = runner(outs[ei][0])
                values = np.full((n, s), np.nan, dtype=np.float64)
                base = None
                if is_residual(h.card.head):  # a correction over the encoder's own logits
                    b = base_logits(h.card.head, outs[ei][1])
                    out = out + b
                    has = np.asarray(h.card.head["base_index"]) >= 0
                    base = np.full((n, s), np.nan, dtype=np.float64)
                    base[:, dst] = np.where(has[src], b[:, src], np.nan)
                elif self.plan.base_index and self.plan.base_index[ei] is not None:  # a plain head, blended
                    base = np.full((n, s), np.nan, dtype=np.float64)
                    idx = np.asarray(self.plan.base_index[ei], dtype=np.int64)
                    base[:, idx >= 0] = outs[ei][1][:, idx[idx >= 0]]
                values[:, dst] = out[:, src]
                members.append(Member(h.name, values, is_logits, base))
            return Raw(members)
