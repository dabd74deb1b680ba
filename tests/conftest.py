"""Fixtures that find the shared real data and weights, or skip with the reason."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network in CI: fail fast, never retry downloads

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    "The `shared/` folder beside the repository, or where ANOMALY_NB_SHARED points."
    return Path(os.environ.get("ANOMALY_NB_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def magnetic_tile() -> Path:
    cat = shared_dir() / "data" / "magnetic_tile" / "magnetic_tile"
    if not (cat / "train" / "good").is_dir():
        pytest.skip(f"real data not found at {cat} (set ANOMALY_NB_SHARED to the shared/ folder)")
    return cat


@pytest.fixture(scope="session")
def effnet_weights() -> Path:
    w = shared_dir() / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
    if not w.is_file():
        pytest.skip(f"offline ImageNet weights not found at {w} (set ANOMALY_NB_SHARED to the shared/ folder)")
    return w
