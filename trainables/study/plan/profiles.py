"""Run profiles: how big a job is, chosen by what the machine can do.

``full`` is report scale. ``smoke`` shrinks the synthetic data (resolution and
images per object) and caps the epochs so that the example configs and the
default search finish on a 2-core laptop. ``auto`` is ``smoke`` when no GPU is
visible, else ``full``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from trainables.data.synthetic import SyntheticSpec


@dataclass(frozen=True)
class Profile:
    """Sizes of one run.

    Attributes
    ----------
    name : str
    resolution : int
        Side of the synthetic images in pixels.
    images_per_object : int
        Synthetic images per object (64 objects; 50 gives the real 2592 / 288 / 320 split).
    max_epochs : int or None
        Cap on every config's ``epochs``; None: no cap.
    num_samples : int
        Default number of search trials.
    recheck_top, recheck_seeds : int
        Default K and S of the top-K re-check (its K best configs, raced over at most S new seeds).
    """

    name: str
    resolution: int
    images_per_object: int
    max_epochs: int | None
    num_samples: int
    recheck_top: int = 3
    recheck_seeds: int = 3

    def synthetic_spec(self, seed: int = 0) -> SyntheticSpec:
        return SyntheticSpec(seed=seed, resolution=self.resolution, images_per_object=self.images_per_object)

    def cap_epochs(self, config: dict) -> dict:
        if self.max_epochs is None or config["epochs"] <= self.max_epochs:
            return config
        return {**config, "epochs": self.max_epochs}

    def describe(self) -> str:
        cap = epoch_cap_text(self.max_epochs)
        n = self.synthetic_spec().n_images
        return f"profile {self.name}: synthetic data at {self.resolution} px, {n} images, {cap}"


def epoch_cap_text(max_epochs: int | None) -> str:
    """``no epoch cap``, ``at most 1 epoch``, ``at most 8 epochs``."""
    if max_epochs is None:
        return "no epoch cap"
    return f"at most {max_epochs} epoch{'s' * (max_epochs != 1)}"


# smoke: the main job on a 2-core CPU in minutes (benchmarks/RESULTS.md, "Main job"): the smallest images every
# VGG depth reads (32 px), 1,024 images, recipes capped at 6 epochs, 6 trials, the 2 best raced over at most 2 new
# seeds. Chosen so that the report's recipe (a 7000-7000 head at lr 1e-4, the slowest learner of the space) still
# trains past both ideal observers on the inner split within its 6 epochs.
PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", resolution=32, images_per_object=16, max_epochs=6, num_samples=6, recheck_top=2,
                     recheck_seeds=2),
    "full": Profile("full", resolution=224, images_per_object=50, max_epochs=None, num_samples=64, recheck_top=3,
                    recheck_seeds=3),
}


def resolve_profile(name: str, **overrides) -> Profile:
    """The profile called ``name`` (``auto``, ``smoke`` or ``full``), with ``overrides`` of its fields applied."""
    if name == "auto":
        name = "full" if torch.cuda.is_available() else "smoke"
    if name not in PROFILES:
        raise ValueError(f"unknown profile '{name}' (valid: auto, {', '.join(PROFILES)})")
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})
