"""Training runs, resumes and exports; shipped networks load and restore better than the input."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch

from mrs_numerics.models import registry
from mrs_numerics.models.training import TrainConfig, export, train


def _tiny(**overrides):
    values = {"iterations": 3, "batch": 2, "crop": 16, "base_channels": 8, "seed": 1}
    values.update(overrides)
    return TrainConfig(**values)


def test_a_few_training_iterations_run_and_change_the_network(tmp_path):
    net, facts = train(_tiny(), tmp_path, progress=False)
    assert facts["config"]["iterations"] == 3
    assert (tmp_path / "checkpoint.pt").exists()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16), torch.tensor([0.5]), torch.rand(1, 3, 16, 16))
    assert torch.isfinite(out).all() and float(out.abs().max()) > 0


def test_training_is_seeded_and_resumable(tmp_path):
    full, _ = train(_tiny(iterations=4), tmp_path / "a", progress=False)
    again, _ = train(_tiny(iterations=4), tmp_path / "c", progress=False)
    for p, q in zip(full.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    train(_tiny(iterations=4), tmp_path / "b", progress=False, stop_after=2)
    resumed, _ = train(_tiny(iterations=4), tmp_path / "b", resume=True, progress=False)
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_bad_training_configuration_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'dehaze'"):
        train(_tiny(task="dehaze"), tmp_path, progress=False)
    with pytest.raises(ValueError, match="crop must be a multiple of 4"):
        train(_tiny(crop=18), tmp_path, progress=False)


def test_export_writes_weights_and_training_facts(tmp_path):
    config = _tiny()
    net, facts = train(config, tmp_path / "run", progress=False)
    path = export(net, config, facts, {"images": {}}, "tiny", tmp_path / "w", "mrs-numerics train")
    index = json.loads((tmp_path / "w" / "index.json").read_text())
    assert path.exists() and index["tiny"]["seed"] == 1 and index["tiny"]["command"]
    state = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float32 for v in state.values())


SHIPPED = registry.available_models()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_network_restores_held_out_images_better_than_the_input(name):
    from mrs_numerics.imaging.degradations import degrade
    from mrs_numerics.imaging.metrics import psnr
    from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, center_crop, load_photo
    from mrs_numerics.restoration import restore
    from mrs_numerics.schedules import get

    net, info = registry.load_model(name)
    clean = torch.stack([center_crop(load_photo(p), 64) for p in HELDOUT_PHOTOS])
    degraded = degrade(info.task, clean, torch.Generator().manual_seed(5))
    schedule = get(info.schedule, max_sigma=info.max_sigma)
    restored = restore(degraded, net, info.prediction, schedule, "posterior", nfe=50, seed=0)
    gain = psnr(restored, clean) - psnr(degraded.clamp(0, 1), clean)
    needed = 3.0 if info.task == "denoise" else 0.0
    assert bool((gain > needed).all()), gain


def test_built_wheel_contains_the_shipped_weights(tmp_path):
    assert SHIPPED, "the package must ship networks (mrs_numerics/models/weights/index.json)"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
    )
    (wheel,) = tmp_path.glob("mrs_numerics-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for info in SHIPPED.values():
        assert f"mrs_numerics/models/weights/{info.weights}" in names
    assert "mrs_numerics/models/weights/index.json" in names
