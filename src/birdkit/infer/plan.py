"""What scores a chunk: the encoders to build in every scoring process, the heads on top of them, or one
encoder's own logits (passthrough), decided once in the parent from the exported model folder.

A :class:`Plan` is picklable and self-contained: it carries the submission species and, for passthrough, the
mapping of those species onto the encoder's classes, so a worker builds its interpreters from the plan alone and
never reads the competition folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from birdkit.competition import Competition
from birdkit.encoders import registry
from birdkit.encoders.base import Capabilities, species_index, unmapped
from birdkit.errors import BirdkitError
from birdkit.heads.card import is_residual
from birdkit.heads.runner import HeadInfo, ModelSet, load_models
from birdkit.infer import postprocess as pp

log = logging.getLogger(__name__)

# The registry's encoder for a compiled TFLite graph (`birdkit compile`): every graph shipped as
# encoders/<name>.tflite + <name>.json runs on it, whatever its name.
COMPILED = registry.COMPILED


class InferError(BirdkitError, RuntimeError):
    """Inference could not run at all (no model, no test folder); the message says what to give instead."""


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to build in each scoring process: its name, the registry entry that builds it (a registered
    name or "module:Class"), its sample rate and constructor options."""

    name: str
    kind: str
    sample_rate: int
    options: dict = field(default_factory=dict)  # constructor options: windows, model_path, batch_size, ...

    def build(self) -> Any:
        return registry.get_encoder(self.kind, **self.options)

    @property
    def capabilities(self) -> Capabilities:
        return registry.resolve(self.kind).capabilities

    def accepts(self, option: str) -> bool:
        return registry.accepts(self.kind, option)

    def option(self, name: str) -> Any:
        """The value an option will have: given, else the constructor's default."""
        return self.options[name] if name in self.options else registry.option_default(self.kind, name)

    def label(self) -> str:
        """The name, then what differs from the encoder's defaults: windows, precision, a labelled variant."""
        parts = [self.name]
        for key in ("windows", "precision"):
            value = self.options.get(key)
            if value and value != registry.option_default(self.kind, key):
                parts.append(str(value))
        for tag, opts in self.capabilities.variants:  # a variant other than the default one: say which
            chosen = all(self.option(k) == v for k, v in opts.items())
            if tag and chosen and any(registry.option_default(self.kind, k) != v for k, v in opts.items()):
                parts.append(tag)
        return " ".join(parts)


@dataclass(frozen=True)
class Plan:
    """Everything a scoring process needs to build its interpreters; picklable, sent to workers once."""

    species: tuple[str, ...]
    encoders: tuple[EncoderSpec, ...]
    heads: tuple[tuple[HeadInfo, int], ...] = ()  # (head, index of its encoder)
    passthrough: int | None = None  # index of the encoder whose own logits score (no heads)
    # passthrough: for each species the encoder class scoring it, -1 where the encoder lacks it
    species_index: tuple[int, ...] = ()
    # heads: per encoder, the same mapping where a plain head on it is blended with the encoder's own classifier
    # (infer/ensemble.py; residual heads carry theirs in the card); None: not needed
    base_index: tuple[tuple[int, ...] | None, ...] = ()
    # post-processing (infer/postprocess.py), as the dataset or the cards record it, its co-occurrence rules bound
    # to the species columns (postprocess.bind); empty: none
    postprocess: dict[str, Any] = field(default_factory=dict)

    @property
    def rates(self) -> tuple[int, ...]:
        return tuple(sorted({e.sample_rate for e in self.encoders}))

    @property
    def unmapped(self) -> list[str]:
        """Species the passthrough encoder cannot predict (they score 0); none with heads."""
        if self.passthrough is None:
            return []
        return [s for s, i in zip(self.species, self.species_index, strict=True) if i < 0]

    @property
    def name(self) -> str:
        enc = " + ".join(e.label() for e in self.encoders)
        if self.passthrough is not None:
            return f"{enc} passthrough"
        return f"{enc} head ({', '.join(h.name for h, _ in self.heads)})"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "encoders": [
                {"name": e.name, **{k: str(v) for k, v in e.options.items()}} for e in self.encoders
            ],
            "heads": [h.name for h, _ in self.heads],
            "passthrough": self.encoders[self.passthrough].name if self.passthrough is not None else None,
            "postprocess": dict(self.postprocess),
        }

    def fastest(self) -> Plan | None:
        """The same models with every encoder on its declared fastest options (``capabilities``), and the
        post-processing those options declare to go with them ahead of the plan's own; None if nothing changes."""
        encs = []
        post: dict[str, Any] = {}
        changed = False
        for e in self.encoders:
            fastest = e.capabilities.fastest_options
            fast = {k: v for k, v in fastest.items() if e.accepts(k) and e.option(k) != v}
            if fast:
                e = replace(e, options={**e.options, **fast})
                post.update(e.capabilities.fastest_postprocess)
                changed = True
            encs.append(e)
        if not changed:
            return None
        return replace(self, encoders=tuple(encs), postprocess={**post, **self.postprocess})


def _spec(name: str, card_encoder: dict, ms: ModelSet | None, options: dict) -> EncoderSpec:
    """A compiled graph shipped in the model folder, else a registered (or "module:Class") encoder, its model
    file from the folder when the folder has one."""
    opts: dict[str, Any] = {}
    if ms is not None and name in ms.compiled:
        sidecar = json.loads(ms.compiled[name].with_suffix(".json").read_text())
        e = EncoderSpec(name, COMPILED, int(sidecar["sample_rate"]))
        opts["model_path"] = str(ms.compiled[name])
    elif name in registry.ENCODERS or ":" in name:
        e = EncoderSpec(name, name, int(registry.resolve(name).sample_rate))
        if ms is not None and name in ms.encoder_files and e.accepts("model_path"):
            opts["model_path"] = str(ms.encoder_files[name])
    else:
        where = f"{ms.root}/encoders/{name}.tflite" if ms is not None else "the model folder (none given)"
        raise InferError(
            f"encoder {name!r} is neither built in ({', '.join(sorted(registry.ENCODERS))}) nor compiled in "
            f"{where}; export the heads again with it (`birdkit export --encoder`)"
        )
    if "windows" in card_encoder and e.accepts("windows"):
        opts["windows"] = card_encoder["windows"]
    opts.update({k: v for k, v in options.items() if e.accepts(k)})
    return replace(e, options=opts)


def make_plan(
    comp: Competition,
    models: str | Path | None = None,
    passthrough: str | None = None,
    encoder_options: dict | None = None,
    postprocess: dict | None = None,
    heads: tuple[str, ...] | None = None,
    bases: bool = False,
) -> tuple[Plan, dict[int, Any]]:
    """Decide what scores the chunks: the exported heads in ``models``, or ``passthrough``'s own logits.

    ``encoder_options`` (windows, batch_size, num_threads, ...) override what the cards say, for every encoder.
    Returns the plan and the encoders built here (by index in ``plan.encoders``): passthrough builds its encoder
    once, to map the species onto its classes, and a one-process run scores with that very encoder.
    ``postprocess`` overrides what the folder says (:func:`postprocessing`). ``heads`` scores with only the
    heads of these names (`birdkit profile` times each head alone). ``bases``: map the species onto the encoder's
    classes for plain heads even when the post-processing blends nothing (`birdkit tune` searches the blend);
    the encoder is then built here, once, and returned.
    """
    species = tuple(comp.species)
    options = {k: v for k, v in (encoder_options or {}).items() if v is not None}
    ms = load_models(models) if models else None
    if passthrough:
        spec = _spec(passthrough, {}, ms, options)
        encoder = spec.build()
        index = species_index(encoder.classes, comp, list(species))
        missing = unmapped(list(species), index)
        if missing:
            log.warning("%s cannot predict %d species (they score 0)", spec.name, len(missing))
        post = pp.check(postprocess) if postprocess is not None else postprocessing(ms, [])
        index_ = tuple(int(i) for i in index)
        plan = Plan(species, (spec,), (), 0, index_, postprocess=pp.bind(post, species))
        return plan, {0: encoder}
    if ms is None or not ms.heads:
        where = f"{models} has no heads/<name>.tflite" if ms else "no --models folder was given"
        raise InferError(
            f"nothing to score with: {where}. Give an exported model folder (`birdkit export`) or use "
            "passthrough='birdnet' (`--passthrough birdnet`) for BirdNET's own logits."
        )
    chosen = list(ms.heads)
    if heads is not None:
        names = [h.name for h in ms.heads]
        unknown = sorted(set(heads) - set(names))
        if unknown:
            raise InferError(f"{models}: no head named {', '.join(unknown)}; it has {', '.join(names)}")
        chosen = [h for h in ms.heads if h.name in heads]
    encoders: list[EncoderSpec] = []
    scored: list[tuple[HeadInfo, int]] = []
    for h in chosen:
        e = _spec(h.card.encoder_name, h.card.encoder, ms, options)
        if e not in encoders:
            encoders.append(e)
        scored.append((h, encoders.index(e)))
        missing = [s for s in species if s not in set(h.card.species)]
        if missing:
            log.info("head %s lacks %d submission species (they get the prior)", h.name, len(missing))
    post = pp.check(postprocess) if postprocess is not None else postprocessing(ms, [h for h, _ in scored])
    ranked = set((post.get("rank") or {}).get("heads", {}))
    if post.get("ensemble") == "rank" and not {h.name for h, _ in scored} <= ranked:
        raise InferError(
            f"the post-processing's rank tables cover heads {', '.join(sorted(ranked))}, not "
            f"{', '.join(h.name for h, _ in scored)}; tune these heads together (`birdkit tune --apply`)"
        )
    built: dict[int, Any] = {}
    base_index: list[tuple[int, ...] | None] = [None] * len(encoders)
    for ei, e in enumerate(encoders):
        plain = any(j == ei and not is_residual(h.card.head) for h, j in scored)
        if (bases or "blend" in post) and plain and e.capabilities.logits:
            built[ei] = e.build()
            base_index[ei] = tuple(int(i) for i in species_index(built[ei].classes, comp, list(species)))
    plan = Plan(
        species,
        tuple(encoders),
        tuple(scored),
        postprocess=pp.bind(post, species),
        base_index=tuple(base_index),
    )
    return plan, built


def postprocessing(ms: ModelSet | None, heads: list[HeadInfo]) -> dict[str, Any]:
    """What the model folder says to apply per file: its ``postprocess.json`` (`birdkit tune --apply`), else the
    heads' cards, which must agree (a card without one counts as none)."""
    if ms is not None:
        folder = pp.read(ms.root)
        if folder is not None:
            return folder
    specs = {json.dumps(pp.check(h.card.postprocess), sort_keys=True) for h in heads}
    if len(specs) > 1:
        raise InferError(
            f"the heads in {ms.root if ms else 'the model folder'} record different post-processing "
            f"({'; '.join(sorted(specs))}); export heads tuned together, or write one postprocess.json "
            "with `birdkit tune --apply`"
        )
    return json.loads(specs.pop()) if specs else {}
