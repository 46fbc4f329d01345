"""How much of IT does a linear map of the pixels explain? (the report's four linear rows)

- scientific: ``regression`` (plain least squares vs. ridge with alpha chosen by 5-fold
  object-stratified CV), ``pca_components`` (0 = no PCA; else fitted on the training fold)
- nuisance: none
- fixed: raw ImageNet-normalised pixels as features
"""

SCIENTIFIC = "pca_components"
# The ladder's rows (trainables.ladder): one per value of these, each the best config of its kind.
LADDER_AXES = ("regression", "pca_components")
LADDER_GROUP = "pixels"
# Readouts are cheap, and ImageNet features need more than 32 px: the smoke profile uses the
# real image count at 64 px.
PROFILE_HINTS = {"smoke": {"resolution": 64, "images_per_object": 50, "num_samples": 12}}
POINTS_TO_EVALUATE = [
    {"regression": "linear", "pca_components": 0},
    {"regression": "ridge", "pca_components": 0},
    {"regression": "linear", "pca_components": 1000},
    {"regression": "ridge", "pca_components": 1000},
]


def ridge_pixels(trial, ctx) -> dict:
    regression = trial.suggest_categorical("regression", ["linear", "ridge"])
    trial.suggest_categorical("pca_components", [0, 50, 100, 200, 500, 1000])
    return {"model": "ridge", "layer": "pixels", "alpha": 0.0 if regression == "linear" else None}
