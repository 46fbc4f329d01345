"""The embedded synthetic IT data set.

Fresh machines have no recordings, so the default data set is drawn here,
deterministically from a seed, in the schema of the real file (DESIGN.md §3).

Images: 8 shape categories x 8 objects. An object is a closed outline
``r(phi) = 1 + sum_k a_k cos(k phi + p_k)`` whose dominant harmonic is set by its
category and whose other harmonics, stripe texture and colours are its own. Each
image shows one object at a random position, scale and rotation on a smooth,
randomly coloured background, under a random illumination gain.

Sites: 168 simulated IT sites respond to a latent identity code (category plus
object, the same wherever the object is drawn: tolerant to position, scale and
rotation), gain-modulated by object size; a tuning to the spatial frequency of
the object's texture (phase- and position-invariant: local filters with pooling
read it, a linear map of the pixels cannot); a weak position receptive field and
a weak dependence on background luminance (the parts a linear model of the
pixels can reach). Single trials add Gaussian noise over ``n_repetitions``;
each site's noise level is set so that its reliability is known, so the noise
ceiling of the trial-averaged responses is known too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

CATEGORIES = ("ellipse", "triangle", "square", "pentagon", "hexagon", "star", "cross", "blob")
OBJECTS_PER_CATEGORY = 8
N_SITES = 168
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# Bump when the generator's output changes, so that old caches are not reused.
GENERATOR_VERSION = 3
_N_HARMONICS = 7
_EMBED_DIM = 16
_FREQ_WEIGHT = 2.0


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. The defaults give the real data set's sizes (2592 / 288 / 320)."""

    seed: int = 0
    resolution: int = 224
    images_per_object: int = 50
    n_repetitions: int = 8

    @property
    def n_images(self) -> int:
        return len(CATEGORIES) * OBJECTS_PER_CATEGORY * self.images_per_object

    def split_sizes(self) -> tuple[int, int, int]:
        """(train, val, test) image counts: 81% / 9% / 10%, as 2592 / 288 / 320."""
        n = self.n_images
        n_val = round(0.09 * n)
        n_test = round(0.10 * n)
        return n - n_val - n_test, n_val, n_test

    def key(self) -> str:
        return (
            f"synthetic-v{GENERATOR_VERSION}-seed{self.seed}-{self.resolution}px-"
            f"{self.images_per_object}ipo-{self.n_repetitions}rep"
        )


def _object_bank(rng: np.random.Generator) -> dict:
    """Shape, texture and colour parameters of the 64 objects, shape (64, ...)."""
    n_obj = len(CATEGORIES) * OBJECTS_PER_CATEGORY
    category = np.repeat(np.arange(len(CATEGORIES)), OBJECTS_PER_CATEGORY)
    # Category signature: dominant harmonic order and its amplitude.
    dominant = np.array([2, 3, 4, 5, 6, 5, 4, 3])
    dom_amp = np.array([0.35, 0.28, 0.22, 0.18, 0.15, 0.45, 0.45, 0.12])
    amps = rng.uniform(0.0, 0.08, size=(n_obj, _N_HARMONICS))
    phases = rng.uniform(0, 2 * np.pi, size=(n_obj, _N_HARMONICS))
    for o in range(n_obj):
        c = category[o]
        amps[o, dominant[c] - 1] = dom_amp[c] * rng.uniform(0.8, 1.2)
        if CATEGORIES[c] == "blob":
            amps[o, :3] += rng.uniform(0.05, 0.2, size=3)
    # Colours: a category hue shared (loosely) by its objects, a second colour per object.
    cat_hue = rng.permutation(len(CATEGORIES)) / len(CATEGORIES)
    hue = (cat_hue[category] + rng.normal(0, 0.05, n_obj)) % 1.0
    color_a = _hsv_to_rgb(hue, rng.uniform(0.4, 0.8, n_obj), rng.uniform(0.5, 0.9, n_obj))
    color_b = _hsv_to_rgb(rng.uniform(0, 1, n_obj), rng.uniform(0.1, 0.6, n_obj), rng.uniform(0.2, 0.9, n_obj))
    return {
        "category": category,
        "amps": amps.astype(np.float32),
        "phases": phases.astype(np.float32),
        "stripe_freq": rng.uniform(1.0, 4.0, n_obj).astype(np.float32),
        "stripe_angle": rng.uniform(0, np.pi, n_obj).astype(np.float32),
        "color_a": color_a.astype(np.float32),
        "color_b": color_b.astype(np.float32),
    }


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, inputs shape (n,), output shape (n, 3) in 0..1."""
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _image_params(rng: np.random.Generator, spec: SyntheticSpec) -> dict:
    """Per-image object id and pose, shape (n_images,). Each object appears images_per_object times."""
    n_obj = len(CATEGORIES) * OBJECTS_PER_CATEGORY
    obj = np.repeat(np.arange(n_obj), spec.images_per_object)
    obj = obj[rng.permutation(obj.size)]
    n = obj.size
    return {
        "object": obj,
        "cx": rng.uniform(-0.45, 0.45, n).astype(np.float32),
        "cy": rng.uniform(-0.45, 0.45, n).astype(np.float32),
        "scale": rng.uniform(0.22, 0.5, n).astype(np.float32),
        "rotation": rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        "gain": rng.uniform(0.75, 1.25, n).astype(np.float32),
        # Background: mean colour, and two low-frequency gratings per channel.
        "bg_mean": rng.uniform(0.2, 0.8, (n, 3)).astype(np.float32),
        "bg_freq": rng.uniform(0.5, 2.5, (n, 2, 2)).astype(np.float32),
        "bg_phase": rng.uniform(0, 2 * np.pi, (n, 2, 3)).astype(np.float32),
        "bg_amp": rng.uniform(0.0, 0.2, (n, 2, 3)).astype(np.float32),
    }


def render_images(spec: SyntheticSpec, bank: dict, params: dict, chunk: int = 64) -> np.ndarray:
    """Draw the stimuli.

    Returns
    -------
    images : array, shape (n_images, 3, resolution, resolution), float32 in 0..1
    """
    res = spec.resolution
    axis = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
    v, u = np.meshgrid(axis, axis, indexing="ij")  # (res, res); u: x to the right, v: y down
    n = params["object"].size
    out = np.empty((n, 3, res, res), dtype=np.float32)
    ks = np.arange(1, _N_HARMONICS + 1, dtype=np.float32)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        obj = params["object"][sl]
        cx, cy = params["cx"][sl, None, None], params["cy"][sl, None, None]
        s, rot = params["scale"][sl, None, None], params["rotation"][sl, None, None]
        du, dv = u[None] - cx, v[None] - cy
        cos_r, sin_r = np.cos(rot), np.sin(rot)
        x = (du * cos_r + dv * sin_r) / s
        y = (-du * sin_r + dv * cos_r) / s
        rho = np.sqrt(x * x + y * y)
        phi = np.arctan2(y, x)
        amps, phases = bank["amps"][obj], bank["phases"][obj]  # (b, K)
        radius = np.ones_like(rho)
        for i, k in enumerate(ks):
            radius += amps[:, i, None, None] * np.cos(k * phi + phases[:, i, None, None])
        # Soft edge about one pixel wide in image space.
        edge = (2.0 / res) / s
        alpha = 1.0 / (1.0 + np.exp(-np.clip((radius - rho) / edge, -30, 30)))
        ang = bank["stripe_angle"][obj][:, None, None]
        freq = bank["stripe_freq"][obj][:, None, None]
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(ang) + y * np.sin(ang)))
        color_a = bank["color_a"][obj][:, :, None, None]
        color_b = bank["color_b"][obj][:, :, None, None]
        obj_rgb = color_a * stripes[:, None] + color_b * (1 - stripes[:, None])
        bg = np.broadcast_to(params["bg_mean"][sl, :, None, None], obj_rgb.shape).copy()
        for g in range(2):
            fu = params["bg_freq"][sl, g, 0][:, None, None]
            fv = params["bg_freq"][sl, g, 1][:, None, None]
            wave = np.pi * (fu * u[None] + fv * v[None])
            for ch in range(3):
                bg[:, ch] += params["bg_amp"][sl, g, ch, None, None] * np.sin(
                    wave + params["bg_phase"][sl, g, ch, None, None]
                )
        img = bg * (1 - alpha[:, None]) + obj_rgb * alpha[:, None]
        img *= params["gain"][sl, None, None, None]
        out[sl] = np.clip(img, 0.0, 1.0)
    return out


def simulate_sites(rng: np.random.Generator, spec: SyntheticSpec, bank: dict, params: dict, images: np.ndarray):
    """Responses of the simulated sites.

    Returns
    -------
    repetitions : array, shape (n_repetitions, n_images, n_sites), float32
        Single-trial responses.
    reliability : array, shape (n_sites,)
        True fraction of the trial-averaged response's variance that is signal.
    """
    n_cat = len(CATEGORIES)
    cat_code = rng.normal(0, 1, (n_cat, _EMBED_DIM))
    obj_code = cat_code[bank["category"]] + 0.9 * rng.normal(0, 1, (bank["category"].size, _EMBED_DIM))
    code = obj_code[params["object"]]  # (n, d): identical wherever the object is drawn
    w = rng.normal(0, 1, (_EMBED_DIM, N_SITES)) / np.sqrt(_EMBED_DIM)
    drive = code @ w  # (n, S)
    # Spatial-frequency tuning to the object's texture: an image feature that is phase- and
    # position-invariant, so local filters with pooling read it and a linear map of pixels cannot.
    preferred = rng.uniform(1.0, 4.0, N_SITES)
    freq = bank["stripe_freq"][params["object"]][:, None]
    tuning = np.exp(-((freq - preferred) ** 2) / (2 * 0.6**2))
    drive = drive + _FREQ_WEIGHT * rng.uniform(0.5, 1.0, N_SITES) * (tuning - tuning.mean(axis=0))
    size = (params["scale"] - params["scale"].mean()) / params["scale"].std()
    size_gain = 1.0 + 0.25 * rng.uniform(-1, 1, N_SITES)[None, :] * size[:, None]
    # Broad position receptive fields.
    rf_x, rf_y = rng.uniform(-0.4, 0.4, N_SITES), rng.uniform(-0.4, 0.4, N_SITES)
    dist2 = (params["cx"][:, None] - rf_x) ** 2 + (params["cy"][:, None] - rf_y) ** 2
    rf = np.exp(-dist2 / (2 * 0.5**2))
    luminance = images.mean(axis=(1, 2, 3))
    luminance = (luminance - luminance.mean()) / luminance.std()
    lin = (
        drive * size_gain * (0.6 + 0.4 * rf)
        # Weak on purpose: mean luminance is the one thing a linear map of the pixels reads directly.
        + 0.1 * rng.normal(0, 1, N_SITES) * luminance[:, None]
    )
    # Rectifying nonlinearity with a site-specific threshold, like a firing rate.
    threshold = rng.uniform(-0.5, 0.5, N_SITES)
    signal = np.logaddexp(0.0, 2.0 * (lin - threshold)) / 2.0
    signal = signal * rng.uniform(0.5, 2.0, N_SITES)
    # Noise per trial so that the reliability of the R-trial mean is `reliability`.
    reliability = rng.uniform(0.55, 0.92, N_SITES)
    var_signal = signal.var(axis=0)
    sigma = np.sqrt(spec.n_repetitions * var_signal * (1 - reliability) / reliability)
    noise = rng.normal(0, 1, (spec.n_repetitions,) + signal.shape) * sigma
    return (signal[None] + noise).astype(np.float32), reliability


def generate(spec: SyntheticSpec) -> dict:
    """Generate the data set as a dict of arrays in the recordings' schema.

    Keys: ``stimulus_{train,val,test}`` (N, 3, H, W) ImageNet-normalised float32;
    ``spikes_{train,val}`` (N, 168) trial-averaged; ``object_{train,val,test}``
    (N,) latin-1 byte strings; ``reps_val`` (R, N_val, 168) single trials of the
    validation images (the noise ceiling is estimated from them).
    """
    rng = np.random.default_rng(spec.seed)
    bank = _object_bank(rng)
    params = _image_params(rng, spec)
    log.info("drawing %d synthetic images at %d px", spec.n_images, spec.resolution)
    images = render_images(spec, bank, params)
    reps, _ = simulate_sites(rng, spec, bank, params, images)
    images -= IMAGENET_MEAN[None, :, None, None]
    images /= IMAGENET_STD[None, :, None, None]
    names = np.array(
        [f"{CATEGORIES[bank['category'][o]]}_{o % OBJECTS_PER_CATEGORY}".encode("latin-1") for o in params["object"]]
    )
    n_train, n_val, _ = spec.split_sizes()
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val), "test": slice(n_train + n_val, None)}
    out = {}
    for part, sl in parts.items():
        out[f"stimulus_{part}"] = images[sl]
        out[f"object_{part}"] = names[sl]
        if part != "test":
            out[f"spikes_{part}"] = reps[:, sl].mean(axis=0)
    out["reps_val"] = reps[:, parts["val"]]
    return out
