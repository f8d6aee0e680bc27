"""`birdkit profile`: the inference path once per configuration, for the paper's Table 7.

It sits above :mod:`birdkit.infer` (it runs it); the timers it reads live below, in :mod:`birdkit.profile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from birdkit.profile import Profile, write_profiles


@dataclass(frozen=True)
class Configuration:
    """One row of the profile table: what scores (passthrough encoder or heads) and with which options."""

    name: str
    passthrough: str | None = None
    windows: str | None = None
    encoder_options: dict = field(default_factory=dict)


def compiled_variants(encoder: str) -> list[tuple[str, dict]]:
    """The encoder's graph variants as (label, options): BirdNET's fast path (numpy front end + CNN-only TFLite)
    and its full shipped graph; one unlabelled variant for an encoder without such a switch.

    The switch is looked up in the encoder's constructor (an option named ``fast``), so an encoder gaining one
    needs no change here.
    """
    import importlib
    import inspect

    from birdkit.encoders import ENCODERS

    if encoder not in ENCODERS:
        return [("", {})]
    mod, cls = ENCODERS[encoder].split(":")
    if "fast" in inspect.signature(getattr(importlib.import_module(mod), cls)).parameters:
        return [("fast", {"fast": True}), ("full-graph", {"fast": False})]
    return [("", {})]


def configurations(
    models: str | Path | None = None, passthrough: tuple[str, ...] = ("birdnet",), windows: bool = True
) -> list[Configuration]:
    """Each encoder x {passthrough, head} x its graph variants (fast, full graph), each with the paper's two
    windows and with the budget guard's single centre window."""
    from birdkit.heads.runner import load_models

    encoders = list(passthrough)
    head_encoder = None
    if models:
        ms = load_models(models)
        encoders += [h.encoder_name for h in ms.heads if h.encoder_name not in encoders]
        head_encoder = ms.heads[0].encoder_name if ms.heads else None
    out: list[Configuration] = []
    for enc in encoders:
        for variant, opts in compiled_variants(enc):
            suffix = f" {variant}" if variant else ""
            out.append(Configuration(f"{enc} passthrough{suffix}", enc, None, opts))
            if windows and enc == "birdnet":
                out.append(Configuration(f"{enc} passthrough centre{suffix}", enc, "centre", opts))
    if head_encoder:
        for variant, opts in compiled_variants(head_encoder):
            suffix = f" {variant}" if variant else ""
            out.append(Configuration(f"head{suffix}", None, None, opts))
            if windows:
                out.append(Configuration(f"head centre{suffix}", None, "centre", opts))
    return out


def profile_configurations(
    data_dir: str | Path,
    models: str | Path | None = None,
    files: int = 20,
    workers: int | None = 1,
    out: str | Path | None = None,
    split: str = "test_soundscapes",
    configs: list[Configuration] | None = None,
    progress: bool = False,
) -> list[Profile]:
    """Run the inference path on the first ``files`` soundscapes once per configuration; save the profiles.

    Every configuration runs the whole path (decode to written CSV) in a fresh set of interpreters, the guard
    off, so the rows compare like the paper's Table 7.
    """
    import tempfile

    from birdkit.infer import run_inference

    configs = configs if configs is not None else configurations(models)
    profiles: list[Profile] = []
    with tempfile.TemporaryDirectory(prefix="birdkit-profile-") as tmp:
        for i, c in enumerate(configs):
            r = run_inference(
                data_dir,
                Path(tmp) / f"submission-{i}.csv",
                models=models,
                passthrough=c.passthrough,
                workers=workers,
                split=split,
                limit=files,
                windows=c.windows,
                encoder_options=c.encoder_options,
                guard=False,
                fallback=False,
                progress=progress,
                name=c.name,
            )
            profiles.append(r.profile)
    if out:
        write_profiles(out, profiles)
    return profiles
