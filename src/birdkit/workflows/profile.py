"""`birdkit profile`: the inference path once per configuration, for the paper's Table 7.

It sits above :mod:`birdkit.infer` (it runs it); the timers it reads live below, in :mod:`birdkit.profile`.
The configurations come from what each encoder declares (:class:`birdkit.encoders.Capabilities`): its graph
variants, and the windows of its fastest options, so an encoder gaining either needs no change here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from birdkit.encoders import Capabilities, registry
from birdkit.errors import OptionError
from birdkit.heads.runner import load_models
from birdkit.infer import InferConfig, run_inference
from birdkit.profile import Profile, write_profiles


@dataclass(frozen=True)
class Configuration:
    """One row of the profile table: what scores (passthrough encoder or heads) and with which options."""

    name: str
    passthrough: str | None = None
    windows: str | None = None
    encoder_options: dict = field(default_factory=dict)
    heads: tuple[str, ...] | None = None  # only these heads (None: every head of the folder)


def capabilities(encoder: str) -> Capabilities:
    """What a registered encoder declares; an encoder the registry does not know (a compiled graph shipped with
    the heads) declares nothing."""
    try:
        return registry.resolve(encoder).capabilities
    except OptionError:
        return Capabilities()


def configurations(
    models: str | Path | None = None, passthrough: tuple[str, ...] = ("birdnet",), windows: bool = True
) -> list[Configuration]:
    """Each encoder x {passthrough, head} x its graph variants (BirdNET: fast, full graph), each with the
    encoder's default windows and, with ``windows``, with the windows of its fastest options (BirdNET's single
    centre window, the budget guard's)."""
    encoders = list(passthrough)
    head_encoder = None
    single: list[Configuration] = []
    if models:
        ms = load_models(models)
        names = [h.card.encoder_name for h in ms.heads]
        encoders += [n for n in dict.fromkeys(names) if n not in encoders]
        head_encoder = names[0] if names else None
        if len(ms.heads) > 1:  # each head alone too, on its encoder's default graph: its own Table 7 row
            single = [Configuration(f"head {h.name}", heads=(h.name,)) for h in ms.heads]
    out: list[Configuration] = []
    for enc in encoders:
        if capabilities(enc).logits:  # an encoder without a classifier has no passthrough to time
            out += _variants(f"{enc} passthrough", enc, capabilities(enc), windows)
    if head_encoder:
        out += _variants("head", None, capabilities(head_encoder), windows)
    return out + single


def _variants(prefix: str, passthrough: str | None, caps: Capabilities, windows: bool) -> list[Configuration]:
    """One configuration per declared variant, each also with the fastest options' windows when asked."""
    fast_windows = caps.fastest_options.get("windows") if windows else None
    out: list[Configuration] = []
    for variant, opts in caps.variants:
        suffix = f" {variant}" if variant else ""
        out.append(Configuration(f"{prefix}{suffix}", passthrough, None, opts))
        if fast_windows:
            out.append(Configuration(f"{prefix} {fast_windows}{suffix}", passthrough, fast_windows, opts))
    return out


def select(configs: list[Configuration], only: str | None) -> list[Configuration]:
    """The configurations named in ``only`` (comma-separated; None: all); an unknown name is an OptionError."""
    if not only:
        return configs
    wanted = {s.strip() for s in only.split(",")}
    unknown = wanted - {c.name for c in configs}
    if unknown:
        raise OptionError(
            f"--only: unknown configurations {sorted(unknown)}; known: {[c.name for c in configs]}"
        )
    return [c for c in configs if c.name in wanted]


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
    if files < 1:
        raise OptionError(f"--files {files}: give 1 or more soundscapes to time")
    configs = configs if configs is not None else configurations(models)
    if not configs:
        raise OptionError("no configuration to profile: give --models with heads, or drop --only")
    profiles: list[Profile] = []
    with tempfile.TemporaryDirectory(prefix="birdkit-profile-") as tmp:
        for i, c in enumerate(configs):
            config = InferConfig(
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
                heads=c.heads,
            )
            profiles.append(run_inference(config).profile)
    if out:
        write_profiles(out, profiles)
    return profiles
