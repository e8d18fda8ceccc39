"""``mrs-numerics train`` misuse: every argument, the work folder and the export are checked
before the first iteration; each refusal is one line naming the flag and what is allowed."""

from __future__ import annotations

import pytest
import torch

from mrs_numerics.cli import main
from mrs_numerics.models import training
from mrs_numerics.models.checkpoints import irsde_schedule, load_irsde_checkpoint, read_options
from mrs_numerics.models.training import TrainConfig, export, train

TINY_IRSDE = ["--arch", "irsde", "--base-channels", "4", "--depth", "1", "--crop", "8"]
TINY = ["--iterations", "1", "--batch", "1", "--no-progress"]


@pytest.fixture
def no_training(monkeypatch):
    """Make the first training step impossible: a refusal must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(training, "_photos", refuse)


def _refused(capsys, argv, *needles):
    status = main(["train", *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--iterations", "0"], ["iterations", "--iterations 1", "≥ 1"]),
        (["--batch", "-3"], ["batch", "--batch 1"]),
        (["--base-channels", "0"], ["base_channels", "--base-channels"]),
        (["--crop", "18"], ["multiple of 4", "(a multiple)"]),
        (["--crop", "5000"], ["crop", "[1, 300]", "--crop 300"]),
        ([*TINY_IRSDE[:6], "--crop", "12", "--depth", "3"], ["multiple of 8", "2**depth"]),
        (["--seed", "-1"], ["seed", "--seed 0"]),
        (["--lr", "nan"], ["lr", "> 0", "--lr"]),
        (["--lr", "0"], ["lr", "--lr"]),
        (["--max-sigma", "50"], ["max_sigma", "not 50", "--max-sigma"]),
        (["--eps", "1.5"], ["eps", "(0, 1)", "--eps"]),
        (["--time-scale", "0"], ["time_scale", "> 0", "--time-scale"]),
        (["--task", "dehaze"], ["unknown task", "denoise", "--task denoise"]),
        (["--schedule", "nosuch"], ["schedule 'nosuch'", "cosine", "--schedule cosine"]),
        (["--depth", "3"], ["depth", "arch 'irsde' only", "--arch irsde"]),
        (["--T", "50"], ["T (50)", "arch 'irsde' only", "--arch irsde"]),
        ([*TINY_IRSDE, "--prediction", "data"], ["predicts noise", "--prediction noise"]),
        ([*TINY_IRSDE, "--time-scale", "10"], ["time_scale", "table index"]),
        ([*TINY_IRSDE, "--schedule", "sigmoid"], ["IR-SDE's tables", "--schedule cosine"]),
        ([*TINY_IRSDE, "--T", "1"], ["T must be", "[2, 100000]", "--T 2"]),
        (["--arch", "irsde", "--depth", "0"], ["depth must be", "--depth 1"]),
        (["--arch", "irsde", "--base-channels", "2", "--depth", "1"], ["nf ≥ 4"]),
        (["--device", "cuda:7"], ["device 'cuda:7'", "--device"]),
        (["--device", "gpu0"], ["device 'gpu0'", "--device cpu"]),
        (["--stop-after", "0"], ["stop_after", "--stop-after 1"]),
    ],
)
def test_a_bad_value_is_one_line_naming_its_flag_before_training(
    argv, needles, capsys, tmp_path, no_training
):
    _refused(capsys, [*TINY, "--work", str(tmp_path), *argv], *needles)


@pytest.mark.parametrize(
    ("name", "needle"),
    [("../escape", "not a file stem"), ("", "not a file stem"), ("index", "not a file stem")],
)
def test_a_bad_export_name_is_refused_before_training(name, needle, capsys, tmp_path, no_training):
    argv = [*TINY, "--work", str(tmp_path / "w"), "--export", name, "--export-dir", str(tmp_path)]
    _refused(capsys, argv, needle, "--export")


def test_a_bad_export_folder_is_refused_before_training(capsys, tmp_path, no_training):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    work = ["--work", str(tmp_path / "w")]
    _refused(capsys, [*TINY, *work, "--export", "n", "--export-dir", str(a_file)], "is a file")
    missing = tmp_path / "no" / "such"
    _refused(capsys, [*TINY, *work, "--export", "n", "--export-dir", str(missing)], "create it")
    _refused(capsys, [*TINY, *work, "--export-dir", str(tmp_path)], "--export NAME")


def test_an_existing_export_is_kept_unless_overwrite(capsys, tmp_path, no_training):
    (tmp_path / "mine.pth").write_bytes(b"precious")
    argv = [*TINY, *TINY_IRSDE, "--work", str(tmp_path / "w"), "--export", "mine"]
    line = _refused(capsys, [*argv, "--export-dir", str(tmp_path)], "mine.pth exists")
    assert "--overwrite" in line
    assert (tmp_path / "mine.pth").read_bytes() == b"precious"
    (tmp_path / "index.json").write_text('{"net": {}}')
    argv = [*TINY, "--work", str(tmp_path / "w"), "--export", "net", "--export-dir", str(tmp_path)]
    _refused(capsys, argv, "already in", "--overwrite")


def _tiny_irsde(**overrides) -> TrainConfig:
    values = dict(arch="irsde", prediction="noise", base_channels=4, depth=1, crop=8, batch=1)
    values.update(iterations=2, seed=3, T=10)
    values.update(overrides)
    return TrainConfig(**values)


def test_an_earlier_checkpoint_is_kept_and_resume_checks_it(capsys, tmp_path):
    train(_tiny_irsde(), tmp_path, progress=False)
    checkpoint = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match=r"exists .* would be replaced"):
        train(_tiny_irsde(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(lr 0.0002 → 0.001\)"):
        train(_tiny_irsde(lr=1e-3), tmp_path, progress=False, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    with pytest.raises(ValueError, match="no checkpoint"):
        train(_tiny_irsde(), tmp_path / "empty", progress=False, resume=True)
    train(_tiny_irsde(), tmp_path, progress=False, overwrite=True)


def test_the_command_line_says_to_resume_or_overwrite(capsys, tmp_path):
    argv = [*TINY, *TINY_IRSDE, "--T", "10", "--work", str(tmp_path)]
    assert main(["train", *argv]) == 0
    capsys.readouterr()
    _refused(capsys, argv, "would be replaced", "--resume", "--overwrite")
    _refused(capsys, [*argv[:-2], "--work", str(tmp_path / "none"), "--resume"], "no checkpoint")


def test_stop_after_with_export_says_nothing_was_exported(capsys, tmp_path):
    argv = [*TINY_IRSDE, "--T", "10", "--iterations", "3", "--batch", "1", "--no-progress"]
    argv += ["--work", str(tmp_path), "--stop-after", "1", "--export", "x"]
    assert main(["train", *argv, "--export-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stopped at step 1 of 3" in out and "nothing exported" in out
    assert not (tmp_path / "x.pth").exists()


def test_irsde_training_exports_the_original_format_and_it_loads_strictly(tmp_path):
    torch.set_num_threads(1)
    config = _tiny_irsde()
    net, facts = train(config, tmp_path / "run", progress=False)
    path = export(net, config, facts, {"images": {}}, "tiny", tmp_path / "w", "train …")
    options = read_options(tmp_path / "w" / "tiny.yml")
    assert options["arch"] == "irsde"
    assert options["setting"] == {"in_nc": 3, "out_nc": 3, "nf": 4, "depth": 1}
    schedule = irsde_schedule(options)
    assert schedule.T == 10 and schedule.kind == "cosine"
    assert schedule.max_sigma == config.max_sigma and float(schedule.alpha(0)) == 1.0
    loaded = load_irsde_checkpoint(path, tmp_path / "w" / "tiny.yml")
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="exists"):
        export(net, config, facts, {"images": {}}, "tiny", tmp_path / "w", "train …")


def test_irsde_loss_is_the_reverse_step_mean_gap():
    """The loss is linear in the noise error, with IR-SDE's gain 2Λ²Δ_t/σ_t (module docstring)."""
    schedule = _tiny_irsde().schedule_object()
    generator = torch.Generator().manual_seed(0)
    shape = (3, 3, 4, 4)
    x0, mu = torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)
    eps = torch.randn(shape, generator=generator)
    index = torch.tensor([4, 4, 4])
    base = training.irsde_loss(lambda x, m, t: eps, schedule, x0, mu, index, eps)
    shifted = training.irsde_loss(lambda x, m, t: eps + 1.0, schedule, x0, mu, index, eps)
    t = torch.tensor(4.0, dtype=torch.float64)
    gain = 2 * schedule.max_sigma**2 * float(schedule.Theta(t) - schedule.Theta(t - 1))
    gain /= float(schedule.sigma(t))
    assert abs(float(shifted) - gain) <= float(base) + 1e-6


def test_verify_real_takes_a_network_in_irsde_format(tmp_path, monkeypatch):
    """``--problem real`` builds its float64 PF-ODE start from an IR-SDE-format network."""
    from mrs_numerics.models import registry
    from mrs_numerics.verification import real_network

    config = _tiny_irsde()
    net, facts = train(config, tmp_path / "run", progress=False)
    weights = export(net, config, facts, {"images": {}}, "tiny", tmp_path / "w", "train …")
    shipped = registry.ShippedCheckpoint("tiny", str(weights), str(weights.with_suffix(".yml")))
    monkeypatch.setattr(real_network, "shipped_checkpoints", lambda: {"tiny": shipped})
    start = real_network.real_start("tiny", crop=8)
    assert start.prediction == "noise" and start.schedule.T == 10
    assert start.x_start.dtype == torch.float64 and float(start.t_start) > float(start.t_end)
    out = start.model(start.x_start, start.t_start, start.mu)
    assert out.dtype == torch.float64 and out.shape == start.x_start.shape
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        real_network.check_real_model("nope")


SHIPPED_IRSDE = "denoise-irsde"


def _shipped_irsde():
    from mrs_numerics.models.registry import shipped_checkpoints

    shipped = shipped_checkpoints()
    assert SHIPPED_IRSDE in shipped, "the package must ship denoise-irsde.pth + denoise-irsde.yml"
    return shipped[SHIPPED_IRSDE]


def test_the_shipped_irsde_network_is_in_the_original_format():
    shipped = _shipped_irsde()
    options = read_options(shipped.options)
    assert options["arch"] == "irsde" and set(options["setting"]) == {
        "in_nc",
        "out_nc",
        "nf",
        "depth",
    }
    raw = torch.load(shipped.weights, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in raw.values())
    net = load_irsde_checkpoint(shipped.weights, shipped.options)  # strict: every key and shape
    assert sum(v.numel() * 4 for v in raw.values()) < 3_000_000  # 670k float32 parameters
    assert net.depth == options["setting"]["depth"]
    schedule = irsde_schedule(shipped.options)
    assert schedule.kind == "cosine" and schedule.T == 100 and float(schedule.alpha(0)) == 1.0


def test_restore_with_the_shipped_checkpoint_beats_its_input(tmp_path, capsys):
    """End to end on the command line: a 32² held-out crop, denoise, 10 NFE."""
    from mrs_numerics.imaging.degradations import degrade
    from mrs_numerics.imaging.files import read_image, write_image
    from mrs_numerics.imaging.metrics import psnr
    from mrs_numerics.imaging.photos import center_crop, load_photo

    torch.set_num_threads(1)
    shipped = _shipped_irsde()
    clean = center_crop(load_photo("grace_hopper"), 32)
    noisy = degrade("denoise", clean[None], torch.Generator().manual_seed(1))[0].clamp(0, 1)
    write_image(tmp_path / "noisy.png", noisy)
    noisy = read_image(tmp_path / "noisy.png")
    argv = ["restore", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"), "-q"]
    argv += ["--checkpoint", shipped.weights, "--config", shipped.options, "--nfe", "10"]
    assert main(argv) == 0, capsys.readouterr().err
    restored = read_image(tmp_path / "out.png")
    gain = float(psnr(restored, clean)) - float(psnr(noisy, clean))
    assert gain > 3.0, gain
