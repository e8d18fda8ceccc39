"""restore(): padding, NFE budgets, determinism; ``mrs-numerics degrade`` and ``restore``."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.cli import main
from mrs_numerics.imaging.degradations import degrade
from mrs_numerics.imaging.files import read_image, write_image
from mrs_numerics.imaging.metrics import psnr
from mrs_numerics.imaging.photos import center_crop, load_photo
from mrs_numerics.models import ConditionalUNet
from mrs_numerics.restoration import (
    MAX_NFE,
    minimum_nfe,
    nfe_for_steps,
    restore,
    steps_for_nfe,
)
from tests.helpers import patch_shipped_registry

TINY_UNET = {"base_channels": 8, "channel_mults": (1, 2, 2), "time_embedding_dim": 16}


@pytest.fixture(scope="module")
def schedule():
    return schedules.cosine()


@pytest.fixture(scope="module")
def untrained():
    return ConditionalUNet.random_init_for_benchmarks(0, **TINY_UNET).eval()


class CallCounter:
    """A data model predicting μ (a tame run) that records the shapes it is called with."""

    def __init__(self, required_multiple: int = 1):
        self.required_multiple = required_multiple
        self.shapes = []

    def __call__(self, x, t, mu):
        self.shapes.append(tuple(x.shape))
        return mu.clone()


def _clean(height: int = 13, width: int = 17) -> torch.Tensor:
    return center_crop(load_photo("astronaut"), (height, width))


# ---------------------------------------------------------------------------------------------
# restore()
# ---------------------------------------------------------------------------------------------


def test_restore_with_an_untrained_unet_keeps_odd_shapes_and_unit_range(untrained, schedule):
    degraded = degrade("denoise", _clean(), torch.Generator().manual_seed(0))
    restored = restore(degraded, untrained, "data", schedule, nfe=4)
    assert restored.shape == (3, 13, 17) and restored.dtype == torch.float32
    assert float(restored.min()) >= 0.0 and float(restored.max()) <= 1.0
    batch = restore(torch.stack([degraded, degraded]), untrained, "data", schedule, nfe=4)
    assert batch.shape == (2, 3, 13, 17)


def test_restore_pads_to_the_model_multiple(schedule):
    model = CallCounter(required_multiple=8)
    restore(_clean(13, 17), model, "data", schedule, nfe=3)
    assert set(model.shapes) == {(1, 3, 16, 24)}


def test_restore_is_determined_by_the_seed(untrained, schedule):
    degraded = _clean(16, 16)
    run = lambda seed: restore(degraded, untrained, "data", schedule, "mrs-sde-1-data", 3, seed)  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_restore_with_a_data_oracle_returns_the_clean_image(schedule):
    clean = _clean(20, 24)
    degraded = degrade("denoise", clean, torch.Generator().manual_seed(0))
    oracle = lambda x, t, mu: clean.expand_as(x)  # noqa: E731
    restored = restore(degraded, oracle, "data", schedule, "mrs-ode-2-data", nfe=5)
    assert psnr(degraded.clamp(0, 1), clean) < 20
    assert psnr(restored, clean) > 40


@pytest.mark.parametrize(
    ("sampler", "nfe", "steps"),
    [
        ("mrs-ode-2-data", 10, 10),
        ("mrs-ode-3-data", 10, 9),
        ("mrs-ode-3-data", 2, 1),
        ("heun-ode", 10, 5),
        ("heun-ode", 9, 4),
        ("mrs-ode-3-noise", 3, 2),
        ("mrs-sde-2-data", 1, 1),
    ],
)
def test_nfe_budget_converts_to_steps_and_is_spent(sampler, nfe, steps, schedule):
    assert steps_for_nfe(sampler, nfe) == steps
    model = CallCounter()
    restore(_clean(8, 8), model, "data", schedule, sampler, nfe)
    assert len(model.shapes) == nfe_for_steps(sampler, steps) <= nfe


def test_minimum_nfe_counts_the_start_call():
    assert minimum_nfe("mrs-ode-3-data") == 2
    assert minimum_nfe("heun-ode") == 2
    assert minimum_nfe("mrs-ode-1-noise") == 1


@pytest.mark.parametrize(
    ("sampler", "nfe", "message"),
    [
        ("mrs-ode-2-data", 0, "the NFE budget must be an integer ≥ 1, got 0"),
        ("heun-ode", 1, "heun-ode needs at least 2 network calls for one step"),
        ("mrs-ode-2-data", MAX_NFE + 1, "absurd; at most 10000"),
        ("mrs-ode-9-data", 10, "unknown sampler 'mrs-ode-9-data'; known solvers: .*heun-ode"),
    ],
)
def test_bad_budgets_and_samplers_are_refused_clearly(sampler, nfe, message, schedule):
    with pytest.raises(ValueError, match=message):
        restore(_clean(8, 8), CallCounter(), "data", schedule, sampler, nfe)


def test_restore_refuses_an_absent_device(schedule):
    with pytest.raises(ValueError, match="unknown device 'gpu7'"):
        restore(_clean(8, 8), CallCounter(), "data", schedule, device="gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            restore(_clean(8, 8), CallCounter(), "data", schedule, device="cuda")


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ((torch.rand(3, 8, 8) * 255).to(torch.uint8), r"torch.uint8.*images.float\(\) / 255"),
        (torch.rand(3, 8, 8) * 255, r"values in \[.*\].*divide a 0–255 image by 255"),
        (torch.full((3, 8, 8), -1.5), r"values in \[-1\.5, -1\.5\]"),
        (torch.full((3, 8, 8), float("nan")), "192 NaN/Inf values"),
        (torch.rand(8, 8), r"got a tensor of shape \(8, 8\)"),
        (torch.rand(4, 8, 8), r"\[3, H, W\] image .* shape \(4, 8, 8\)"),
        (torch.rand(2, 1, 3, 8, 8), r"shape \(2, 1, 3, 8, 8\)"),
        (torch.rand(0, 3, 8, 8), r"shape \(0, 3, 8, 8\)"),
    ],
)
def test_restore_refuses_images_it_cannot_restore_saying_how_to_fix_them(images, message, schedule):
    model = CallCounter()
    with pytest.raises(ValueError, match=message):
        restore(images, model, "data", schedule, nfe=2)
    assert not model.shapes
    from mrs_numerics.restoration import restore_shipped

    with pytest.raises(ValueError, match=message):
        restore_shipped(images, task="denoise", nfe=2)


def test_restore_refuses_a_non_tensor_and_accepts_noise_overshoot(schedule):
    with pytest.raises(TypeError, match=r"torch\.Tensor, got ndarray"):
        restore(_clean(8, 8).numpy(), CallCounter(), "data", schedule, nfe=2)
    # a noisy μ is not clipped (the shipped denoise networks are trained on it so)
    overshoot = _clean(8, 8) + torch.linspace(-0.9, 0.9, 8)
    assert restore(overshoot, CallCounter(), "data", schedule, nfe=2).shape == (3, 8, 8)


class Diverging:
    """A data model far from any image: the state runs away from μ."""

    required_multiple = 1

    def __call__(self, x, t, mu):
        return mu + 100.0


def test_restore_raises_on_divergence_unless_allowed(schedule):
    from mrs_numerics.solvers.engine import DivergenceError

    with pytest.raises(DivergenceError, match="diverged"):
        restore(_clean(8, 8), Diverging(), "data", schedule, "mrs-ode-2-data", nfe=3)
    with pytest.warns(RuntimeWarning, match="diverged"):
        image = restore(
            _clean(8, 8), Diverging(), "data", schedule, "mrs-ode-2-data", 3, allow_divergence=True
        )
    assert image.shape == (3, 8, 8) and float(image.min()) == 1.0  # μ + 100, clamped
    with pytest.raises(DivergenceError):
        restore(_clean(16, 16), Diverging(), "data", schedule, nfe=3, tile=8, overlap=2)


def test_restore_shows_progress_bars_only_when_asked(untrained, schedule, capsys):
    restore(_clean(16, 16), untrained, "data", schedule, nfe=3)
    assert capsys.readouterr().err == ""
    restore(_clean(16, 16), untrained, "data", schedule, nfe=3, progress=True)
    err = capsys.readouterr().err
    assert "sampling" in err and "tiles" not in err
    restore(_clean(16, 16), untrained, "data", schedule, nfe=3, tile=8, progress=True)
    err = capsys.readouterr().err
    assert "tiles" in err and "sampling" in err and "/9" in err  # 9 tiles, with their count


# ---------------------------------------------------------------------------------------------
# mrs-numerics degrade
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    write_image(folder / "a.png", _clean(21, 30))
    write_image(folder / "b.jpg", center_crop(load_photo("chelsea"), (32, 19)))
    (folder / "notes.txt").write_text("not an image")
    return folder


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"mrs-numerics {command}: error: ")
    return err


def test_degrade_a_folder_end_to_end(photo_folder, tmp_path, capsys):
    out = tmp_path / "noisy"
    assert main(["degrade", str(photo_folder), "-o", str(out), "--task", "denoise"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "degraded 2 image(s) for task 'denoise'" in capsys.readouterr().out
    clean, noisy = read_image(photo_folder / "a.png"), read_image(out / "a.png")
    assert noisy.shape == (3, 21, 30)
    assert 10 < psnr(noisy, clean) < 20
    assert read_image(out / "b.png").shape == (3, 32, 19)


def test_degrade_a_file_is_seeded(photo_folder, tmp_path):
    source = str(photo_folder / "a.png")
    for name, seed in (("one.png", "3"), ("two.png", "3"), ("three.png", "4")):
        argv = ["degrade", source, "-o", str(tmp_path / name), "--task", "blur", "--seed", seed]
        assert main(argv) == 0
    one, two, three = (read_image(tmp_path / n) for n in ("one.png", "two.png", "three.png"))
    assert torch.equal(one, two) and not torch.equal(one, three)
    assert main(["degrade", source, "-o", str(tmp_path), "--task", "jpeg"]) == 0
    assert (tmp_path / "a.png").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{folder}/a.png", "-o", "{tmp}/x.png", "--task", "dehaze"], "unknown task 'dehaze'"),
        (["{tmp}/missing.png", "-o", "{tmp}/x.png", "--task", "jpeg"], "does not exist"),
        (["{folder}/notes.txt", "-o", "{tmp}/x.png", "--task", "jpeg"], "cannot read image"),
        (["{folder}/a.png", "-o", "{tmp}/no/x.png", "--task", "jpeg"], "folder .* does not exist"),
        (["{folder}/a.png", "-o", "{tmp}/x.txt", "--task", "jpeg"], "needs an image suffix"),
        (["{folder}/a.png", "-o", "{folder}/a.png", "--task", "jpeg"], "overwrite the input"),
        (["{folder}", "-o", "{folder}", "--task", "jpeg"], "into the input folder"),
        (["{folder}", "-o", "{folder}/a.png", "--task", "jpeg"], "is not a folder"),
        (["{tmp}/empty", "-o", "{tmp}/out", "--task", "jpeg"], "no PNG or JPEG images"),
    ],
)
def test_degrade_errors_exit_2_with_one_line(arguments, message, photo_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(folder=photo_folder, tmp=tmp_path) for a in arguments]
    assert main(["degrade", *argv]) == 2
    assert re.search(message, _error_line(capsys, "degrade"))


# ---------------------------------------------------------------------------------------------
# mrs-numerics restore
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--task", "dehaze"], "unknown task 'dehaze'; allowed: denoise"),
        (["--task", "denoise", "--sampler", "dpm"], "unknown sampler 'dpm'; known solvers: "),
        (["--task", "denoise", "--nfe", "0"], "the NFE budget must be an integer ≥ 1, got 0"),
        (["--task", "denoise", "--nfe", "20000"], "absurd; at most 10000"),
        (["--task", "denoise", "--sampler", "heun-ode", "--nfe", "1"], "at least 2"),
        (["--task", "denoise", "--grid", "tuned", "--sampler", "euler-ode"], "no tuned grid"),
        (["--task", "denoise", "--device", "gpu7"], "unknown device 'gpu7'"),
        ([], "give --task"),
        (["--task", "denoise", "--tile", "big"], "--tile must be a number of pixels or none"),
        (["--task", "denoise", "--tile", "-8"], "--tile must be ≥ 0 pixels, got -8"),
        (["--task", "denoise", "--tile-overlap", "-1"], "--tile-overlap must be ≥ 0 pixels"),
        (["--task", "denoise", "--max-memory", "lots"], "unknown memory size 'lots'"),
    ],
)
def test_restore_errors_exit_2_before_loading_a_network(
    arguments, message, photo_folder, tmp_path, capsys
):
    argv = ["restore", str(photo_folder / "a.png"), "-o", str(tmp_path / "x.png"), *arguments]
    assert main(argv) == 2
    assert message in _error_line(capsys, "restore")
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def shipped(monkeypatch):
    """The registry's loader patched to hand out an untrained tiny UNet for 'denoise'."""
    return patch_shipped_registry(
        monkeypatch, lambda: ConditionalUNet.random_init_for_benchmarks(0, **TINY_UNET).eval()
    )


def test_restore_a_folder_of_odd_sizes_end_to_end(shipped, photo_folder, tmp_path, capsys):
    noisy = tmp_path / "noisy"
    assert main(["degrade", str(photo_folder), "-o", str(noisy), "--task", "denoise"]) == 0
    out = tmp_path / "restored" / "deep"
    argv = ["restore", str(noisy), "-o", str(out), "--task", "denoise", "--nfe", "3"]
    assert main([*argv, "--sampler", "mrs-ode-3-data"]) == 0
    assert read_image(out / "a.png").shape == (3, 21, 30)
    assert read_image(out / "b.png").shape == (3, 32, 19)
    stdout = capsys.readouterr().out
    assert "with tiny-denoise (denoise, data prediction) and mrs-ode-3-data" in stdout
    assert "2 steps, 3 network calls each" in stdout


def test_restore_refuses_a_network_of_another_task(shipped, photo_folder, tmp_path, capsys):
    argv = ["restore", str(photo_folder / "a.png"), "-o", str(tmp_path / "x.png")]
    assert main([*argv, "--model", "tiny-denoise", "--task", "jpeg"]) == 2
    assert "restores 'denoise', not 'jpeg'" in _error_line(capsys, "restore")
    assert main([*argv, "--task", "blur"]) == 2
    assert "no shipped network for task 'blur'" in _error_line(capsys, "restore")
    assert main([*argv, "--model", "tiny-denoise"]) == 0
    assert read_image(tmp_path / "x.png").shape == (3, 21, 30)


def test_restore_in_tiles_end_to_end(shipped, photo_folder, tmp_path, capsys):
    source, out = str(photo_folder / "a.png"), tmp_path / "x.png"
    argv = ["restore", source, "-o", str(out), "--task", "denoise", "--nfe", "2"]
    assert main([*argv, "--tile", "16", "--tile-overlap", "4"]) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"a\.png -> .*x\.png \(6 tiles\)", stdout)  # 24×32 padded: 2 × 3 tiles
    assert "network calls each (per tile)" in stdout
    tiled = read_image(out)
    assert tiled.shape == (3, 21, 30)
    argv.append("--overwrite")
    assert main([*argv, "--tile", "none"]) == 0
    assert "tiles)" not in capsys.readouterr().out
    assert not torch.equal(read_image(out), tiled)
    assert main([*argv, "--max-memory", "1GB"]) == 0  # fits whole: no tiles
    assert "tiles)" not in capsys.readouterr().out
    assert main([*argv, "--max-memory", "100KB"]) == 2
    assert "too small for 1 image(s) of 24×32 pixels" in _error_line(capsys, "restore")


def test_restore_progress_bars_follow_the_terminal_and_quiet(
    shipped, photo_folder, tmp_path, capsys, monkeypatch
):
    argv = ["restore", str(photo_folder), "-o", str(tmp_path / "out"), "--task", "denoise"]
    argv += ["--nfe", "2"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # stderr is not a terminal: no bars
    argv.append("--overwrite")
    assert "a.png -> " in captured.out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "images" in captured.err and "sampling" in captured.err and "/2" in captured.err
    assert "a.png -> " in captured.out and "b.jpg -> " in captured.out
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_diverged_run_fails_the_command_unless_allowed(
    monkeypatch, photo_folder, tmp_path, capsys
):
    class Diverging:
        def __call__(self, x, t, mu):
            return mu + 100.0

    patch_shipped_registry(monkeypatch, Diverging)
    out = tmp_path / "x.png"
    argv = ["restore", str(photo_folder / "a.png"), "-o", str(out), "--task", "denoise"]
    argv += ["--sampler", "mrs-ode-2-data", "--nfe", "3"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.match(r"mrs-numerics restore: failed: .*a\.png: the sampler diverged at step", err)
    assert not out.exists()
    assert main([*argv, "--allow-divergence"]) == 0
    err = capsys.readouterr().err
    assert re.match(r"mrs-numerics restore: warning: .*a\.png: the sampler diverged", err)
    assert out.is_file()


def test_restore_shipped_uses_the_task_network_and_improves_a_noisy_crop():
    from mrs_numerics.models.registry import load_model, model_for_task
    from mrs_numerics.restoration import restore_shipped

    clean = center_crop(load_photo("coffee"), (20, 28))
    noisy = degrade("denoise", clean, torch.Generator().manual_seed(3))
    restored = restore_shipped(noisy, task="denoise", nfe=5, seed=1)
    assert restored.shape == clean.shape
    assert psnr(restored, clean, border=0) > psnr(noisy.clamp(0, 1), clean, border=0)
    name = model_for_task("denoise")
    net, info = load_model(name)
    sch = schedules.get(info.schedule, max_sigma=info.max_sigma)
    direct = restore(noisy, net, info.prediction, sch, nfe=5, seed=1, model_name=name)
    torch.testing.assert_close(restored, direct, rtol=0, atol=0)
    # without the network's name there is no tuned grid: the uniform-λ grid gives another image
    untuned = restore(noisy, net, info.prediction, sch, nfe=5, seed=1)
    assert not torch.equal(untuned, direct)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "name a task"),
        ({"task": "sharpen"}, "unknown task 'sharpen'"),
        ({"task": "lowlight", "model": "denoise-data"}, "restores 'denoise', not 'lowlight'"),
    ],
)
def test_restore_shipped_refuses_bad_choices(options, message):
    from mrs_numerics.restoration import restore_shipped

    with pytest.raises(ValueError, match=message):
        restore_shipped(torch.zeros(3, 8, 8), **options)


def test_model_for_task_prefers_data_prediction_then_held_out_psnr():
    from mrs_numerics.models.registry import available_models, model_for_task

    models = available_models()
    for task in {info.task for info in models.values()}:
        chosen = models[model_for_task(task)]
        has_data = any(i.prediction == "data" for i in models.values() if i.task == task)
        assert chosen.task == task
        assert chosen.prediction == ("data" if has_data else chosen.prediction)
        for prediction in ("data", "noise"):
            rivals = [i for i in models.values() if i.task == task and i.prediction == prediction]
            if rivals:
                best = models[model_for_task(task, prediction)]
                assert best.prediction == prediction

                def mean_psnr(info):
                    rows = info.heldout["images"].values()
                    return sum(r["restored_psnr"] for r in rows) / len(rows)

                assert mean_psnr(best) == max(mean_psnr(i) for i in rivals)
