"""``mrs-numerics tune`` misused: every bad request is refused in one line before the first
network call, no file is replaced or merged into unasked, and a checkpoint tunes on the user's
own images (docs/misuse/tune.md lists the cases)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.cli import main
from mrs_numerics.cli import tune as tune_cli
from mrs_numerics.imaging.files import write_image
from mrs_numerics.models.network_identity import checkpoint_identity
from mrs_numerics.models.tuned_grids import TunedGrid, read_grid_file, write_grid_file
from mrs_numerics.restoration.checkpoint import checkpoint_network
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.tuning import calibration, fit, teacher, tune_timesteps
from mrs_numerics.tuning.calibration import FolderImages, folder_images, split_folder
from mrs_numerics.tuning.output import grid_key, save_grids
from mrs_numerics.tuning.request import check_tuning
from mrs_numerics.tuning.shipped import tune_grids
from mrs_numerics.verification.oracles import GaussianData

ORACLE_SCHEDULE = schedules.get("cosine")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "irsde"
OPTIONS = FIXTURES / "irsde-options.yml"
DACLIP_OPTIONS = FIXTURES / "daclip-options.yml"
TINY = ["--crops", "2", "--crop", "16", "--teacher-steps", "8", "--max-evaluations", "2"]


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if tune loads a network or computes a teacher."""

    def called(*args, **kwargs):
        raise AssertionError("a network was loaded or called before the request was refused")

    monkeypatch.setattr(tune_cli, "_network", called)
    monkeypatch.setattr("mrs_numerics.tuning.shipped.converged_output", called)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A folder of three small degraded images, one held-out image, the fixture checkpoints."""
    root = tmp_path_factory.mktemp("tune")
    generator = torch.Generator().manual_seed(0)
    (root / "cal").mkdir()
    (root / "held").mkdir()
    for i in range(3):
        write_image(root / "cal" / f"im{i}.png", torch.rand(3, 24, 32, generator=generator))
    write_image(root / "held" / "h.png", torch.rand(3, 20, 20, generator=generator))
    for name, fixture in (
        ("irsde", "irsde_conditional_unet_small.pt"),
        ("daclip", "daclip_conditional_unet_small.pt"),
    ):
        state = torch.load(FIXTURES / fixture, map_location="cpu", weights_only=True)
        torch.save(state["state_dict"], root / f"{name}.pth")
    return root


def _tune(*argv: str) -> list[str]:
    return ["tune", *argv]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


SHIPPED = ["--model", "denoise-data", "--sampler", "mrs-ode-2-data"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nfe", "0"], "NFE (a budget of network calls) must be an integer ≥ 1, got 0"),
        (["--nfe", "-2"], "must be an integer ≥ 1, got -2"),
        (["--nfe", "3,3"], "NFE 3 is given twice"),
        (["--nfe", "abc"], "--nfe must be a comma-separated list of ints"),
        (["--nfe", "1000000000"], "a tuned grid must be coarser than its teacher"),
        (["--nfe", "10", "--teacher-steps", "10"], "not fewer than the teacher's 10"),
        (["--nfe", "3", "--teacher-steps", "7"], "teacher steps must be an even integer"),
        (["--nfe", "3", "--crops", "0"], "crops (calibration crops) must be an integer ≥ 1"),
        (["--nfe", "3", "--crop", "0"], "crop (side of the calibration crops) must be"),
        (["--nfe", "3", "--crop", "1000"], "crop 1000 exceeds the training photo"),
        (["--nfe", "3", "--heldout-crop", "480"], "heldout crop 480 exceeds the held-out photo"),
        (["--nfe", "3", "--max-evaluations", "0"], "max evaluations (runs per fit) must be"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_bad_numbers_are_refused_before_any_network_call(
    no_network, tmp_path, capsys, extra, message
):
    argv = _tune(*SHIPPED, *extra, "-o", str(tmp_path / "g.json"))
    assert main(argv) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "g.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model", "denoise-data", "--sampler", "heun-ode", "--nfe", "1"],
            "heun-ode needs at least 2 network calls for one step",
        ),
        (
            ["--model", "denoise-data", "--sampler", "heun-ode", "--nfe", "4,5"],
            "NFE 4 and 5 both give 2 steps (4 network calls) with heun-ode",
        ),
        (
            ["--model", "denoise-data", "--sampler", "ms3", "--nfe", "3"],
            "'ms3' is a few-step variant, not a solver id; pass --variant ms3 to tune it",
        ),
        (
            [
                "--model",
                "denoise-data",
                "--sampler",
                "euler-ode",
                "--start",
                "warmup",
                "--nfe",
                "3",
            ],
            "euler-ode is a baseline sampler: it has no start option",
        ),
        (["--model", "denoise-data", "--nfe", "3"], "give one sampler"),
        (
            [
                "--model",
                "denoise-data",
                "--sampler",
                "mrs-ode-2-data",
                "--variant",
                "ms3",
                "--nfe",
                "3",
            ],
            "give one sampler: a solver id or a named few-step variant, not both",
        ),
        (["--model", "denoise-data", "--sampler", "no-such", "--nfe", "3"], "unknown solver"),
        (["--model", "no-such", "--variant", "ms3", "--nfe", "3"], "unknown model 'no-such'"),
        (["--variant", "ms3", "--nfe", "3"], "no network: name a shipped network"),
    ],
)
def test_bad_samplers_and_networks_are_refused_before_any_network_call(
    no_network, tmp_path, capsys, argv, message
):
    assert main(_tune(*argv, "-o", str(tmp_path / "g.json"))) == 2
    assert message in _error(capsys)


def test_checkpoint_options_are_refused_without_their_partners(no_network, user_files, capsys):
    out = ["-o", str(user_files / "never.json"), "--variant", "ms3", "--nfe", "3", "--crop", "16"]
    checkpoint = str(user_files / "irsde.pth")
    cases = [
        (
            ["--model", "denoise-data", "--config", str(OPTIONS)],
            "an option file given, which describe a checkpoint's network, but no checkpoint;"
            " pass --checkpoint FILE",
        ),
        (["--model", "denoise-data", "--round-time"], "integer times given"),
        (["--checkpoint", checkpoint], "pass --config FILE"),
        (
            ["--checkpoint", checkpoint, "--model", "denoise-data", "--config", str(OPTIONS)],
            "give one network",
        ),
        (
            ["--checkpoint", str(user_files / "missing.pth"), "--config", str(OPTIONS)],
            "checkpoint " + str(user_files / "missing.pth") + " does not exist",
        ),
        (
            ["--checkpoint", checkpoint, "--config", str(OPTIONS)],
            "a checkpoint is calibrated on your own degraded images (the package degrades only"
            " for its own tasks); pass --calibration DIR",
        ),
        (
            [
                "--checkpoint",
                checkpoint,
                "--config",
                str(OPTIONS),
                "--calibration",
                str(user_files / "cal"),
            ],
            "the held-out check needs your own held-out images",
        ),
    ]
    for argv, message in cases:
        assert main(_tune(*argv, *out)) == 2, argv
        assert message in _error(capsys), argv


def test_calibration_and_heldout_folders_are_checked_before_any_network_call(
    no_network, user_files, tmp_path, capsys
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_text("not an image")
    cal, held = str(user_files / "cal"), str(user_files / "held")
    cases = [
        (["--calibration", str(tmp_path / "none")], "calibration folder", "does not exist"),
        (["--calibration", str(tmp_path / "empty")], "holds no PNG or JPEG image", ""),
        (["--calibration", str(tmp_path / "bad"), "--no-heldout"], "cannot read image", ""),
        (["--calibration", cal, "--crop", "28", "--no-heldout"], "is 24×32, smaller than", ""),
        (["--calibration", cal, "--heldout-fraction", "1.5"], "heldout fraction must be", ""),
        (["--calibration", cal, "--heldout", cal], "shares images with the calibration", ""),
        (["--calibration", cal, "--heldout", held, "--no-heldout"], "skipped and given", ""),
        (["--calibration", cal, "--heldout", held, "--heldout-fraction", "0.5"], "give one", ""),
        (["--heldout-fraction", "0.5"], "none is given; pass --calibration DIR", ""),
        (["--calibration", cal, "--heldout", held, "--heldout-crop", "24"], "held-out folder", ""),
    ]
    for argv, message, more in cases:
        full = _tune(*SHIPPED, "--nfe", "3", "--crop", "16", *argv, "-o", str(tmp_path / "g.json"))
        assert main(full) == 2, argv
        err = _error(capsys)
        assert message in err and more in err, (argv, err)


def test_a_crop_the_network_cannot_take_is_refused_before_the_teacher(
    monkeypatch, tmp_path, capsys
):
    def called(*args, **kwargs):
        raise AssertionError("the teacher was computed before the crop was refused")

    monkeypatch.setattr("mrs_numerics.tuning.shipped.converged_output", called)
    argv = _tune(*SHIPPED, "--nfe", "3", "--crop", "18", "-o", str(tmp_path / "g.json"))
    assert main(argv) == 2
    assert "crop 18 must be a multiple of the network's 4" in _error(capsys)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "a PNG image"),
        (b"\xff\xd8\xff\xe0....", "a JPEG image"),
        (b'{"format": "something else"}', "a JSON file that is not a tuned-grid file"),
        (b"some notes\n", "a text file"),
        (b"", "an empty file"),
    ],
)
def test_an_existing_output_is_never_replaced_or_merged_into_unasked(
    no_network, tmp_path, capsys, content, kind
):
    precious = tmp_path / "precious.json"
    precious.write_bytes(content)
    base = _tune(*SHIPPED, "--nfe", "3", "-o", str(precious))
    assert main(base) == 2
    assert f"grid file {precious} exists and would be replaced; pass --overwrite" in _error(capsys)
    assert main([*base, "--merge"]) == 2
    err = _error(capsys)
    assert f"grid file {precious} is {kind}" in err
    assert "grids are merged only into a tuned-grid file, and this one is neither" in err
    assert precious.read_bytes() == content


def test_an_image_name_a_folder_or_a_missing_folder_is_refused_as_output(
    no_network, tmp_path, capsys
):
    image = tmp_path / "precious.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n....")
    cases = [
        (image, "grid file " + str(image) + " must end in .json: a grid file is JSON"),
        (tmp_path / "new.png", "must end in .json"),
        (tmp_path / "missing" / "g.json", "does not exist; create it first"),
    ]
    (tmp_path / "folder.json").mkdir()
    cases.append((tmp_path / "folder.json", "is a folder; give a file name"))
    for out, message in cases:
        assert main(_tune(*SHIPPED, "--nfe", "3", "-o", str(out), "--overwrite")) == 2
        assert message in _error(capsys)
    assert image.read_bytes() == b"\x89PNG\r\n\x1a\n...."
    assert (
        main(
            _tune(*SHIPPED, "--nfe", "3", "-o", str(tmp_path / "g.json"), "--merge", "--overwrite")
        )
        == 2
    )
    assert "give one" in _error(capsys)


def _grid(network: str, nfe: int = 3, **options) -> TunedGrid:
    """A real (tiny) tuned grid of an exact oracle, named for ``network``."""
    problem = GaussianData.random(ORACLE_SCHEDULE, batch=2, dim=2, variance=0.1, seed=0)
    sampler = make_sampler("mrs-ode-2-data", ORACLE_SCHEDULE, "data", **options)
    grid = tune_timesteps(
        sampler, problem.data, problem.mu, nfe, teacher_steps=8, max_evaluations=2
    )
    grid.model = network
    grid.network = {"name": network, "sha256": hashlib.sha256(network.encode()).hexdigest()}
    return grid


def test_merge_replaces_only_the_grid_for_the_same_network_sampler_and_nfe(tmp_path):
    path = tmp_path / "g.json"
    old = [
        _grid("denoise-data"),
        _grid("blur-data"),
        _grid("denoise-data", nfe=4),
        _grid("denoise-data", start="warmup"),
    ]
    write_grid_file(path, old)
    new = _grid("denoise-data")
    new.fidelity_db = 40.0
    written = save_grids(path, [new], merge=True)
    assert written["replaced"] == 1 and written["kept"] == 3
    back = read_grid_file(path)
    assert sorted(grid_key(g) for g in back) == sorted(grid_key(g) for g in old)
    mine = [g for g in back if grid_key(g) == grid_key(new)]
    assert [g.fidelity_db for g in mine] == [40.0]
    same_name_other_weights = _grid("denoise-data")
    same_name_other_weights.network = {"name": "denoise-data", "sha256": "0" * 64}
    assert grid_key(same_name_other_weights) != grid_key(new)


def test_the_command_merges_and_says_how_many_were_replaced_and_kept(user_files, tmp_path, capsys):
    out = tmp_path / "g.json"
    write_grid_file(out, [_grid("blur-data", nfe=2)])
    argv = _tune(
        *SHIPPED,
        *TINY,
        "--calibration",
        str(user_files / "cal"),
        "--heldout",
        str(user_files / "held"),
        "--heldout-crop",
        "16",
        "--no-progress",
        "-o",
        str(out),
    )
    assert main([*argv, "--nfe", "2", "--merge"]) == 0
    assert "wrote 1 grid(s) to" in capsys.readouterr().out
    assert main([*argv, "--nfe", "2,3", "--merge"]) == 0
    assert "(merged: 1 replaced, 1 kept)" in capsys.readouterr().out
    grids = read_grid_file(out)
    assert sorted((g.model, g.nfe) for g in grids) == [
        ("blur-data", 2),
        ("denoise-data", 2),
        ("denoise-data", 3),
    ]
    mine = [g for g in grids if g.model == "denoise-data"]
    assert all(g.calibration["folder"] == str(user_files / "cal") for g in mine)
    assert all(g.calibration["heldout"]["images"] == ["h.png"] for g in mine)
    assert all(len(g.network["sha256"]) == 64 for g in mine)
    assert all(g.heldout_fidelity_db is not None for g in mine)


def test_a_checkpoint_whose_teacher_diverges_fails_in_one_line_and_writes_nothing(
    user_files, tmp_path, capsys
):
    out = tmp_path / "g.json"
    write_grid_file(out, [_grid("blur-data")])
    before = out.read_bytes()
    argv = _tune(
        "--checkpoint",
        str(user_files / "irsde.pth"),
        "--config",
        str(OPTIONS),
        "--calibration",
        str(user_files / "cal"),
        "--heldout-fraction",
        "0.34",
        "--sampler",
        "mrs-ode-2-data",
        "--nfe",
        "2",
        *TINY,
        "--no-progress",
        "-o",
        str(out),
        "--merge",
    )
    assert main(argv) == 1
    err = _error(capsys)
    assert (
        "the teacher (8 fine steps) diverged or became non-finite on the calibration crops" in err
    )
    assert "allow_divergence" not in err
    assert out.read_bytes() == before


def test_a_missing_per_image_context_is_refused_before_the_teacher(
    no_network, user_files, tmp_path
):
    network = checkpoint_network(
        user_files / "daclip.pth", DACLIP_OPTIONS, text_context=tmp_path, image_context=tmp_path
    )
    request = check_tuning(
        nfe=[2],
        checkpoint=user_files / "daclip.pth",
        config=DACLIP_OPTIONS,
        text_context=tmp_path,
        image_context=tmp_path,
        sampler="mrs-ode-2-data",
        calibration=user_files / "cal",
        crop=16,
        crops=2,
        teacher_steps=8,
        no_heldout=True,
    )
    with pytest.raises(OSError, match="im"):
        tune_grids(
            network.model,
            "noise",
            network.schedule,
            request,
            checkpoint_identity(user_files / "daclip.pth"),
            model_for=network.model_for,
        )


class MeanModel:
    """A stand-in network that predicts the noise of x₀ = μ exactly: (x − μ)/σ(t)."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, x, t, mu):
        sigma = self.schedule.sigma(t).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (x - mu) / sigma


def test_a_checkpoints_grids_name_its_file_hash_and_calibration_folder(user_files, tmp_path):
    path = user_files / "irsde.pth"
    network = checkpoint_network(path, OPTIONS)
    request = check_tuning(
        nfe=[2, 3],
        checkpoint=path,
        config=OPTIONS,
        sampler="mrs-ode-2-data",
        calibration=user_files / "cal",
        heldout_fraction=0.34,
        crop=16,
        crops=2,
        teacher_steps=8,
        max_evaluations=2,
        out=tmp_path / "g.json",
    )
    grids = tune_grids(
        MeanModel(network.schedule), "noise", network.schedule, request, checkpoint_identity(path)
    )
    expected = {"name": "irsde.pth", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert [g.nfe for g in grids] == [2, 3]
    for grid in grids:
        assert grid.network == expected and grid.model == "irsde.pth"
        assert grid.calibration["folder"] == str(user_files / "cal")
        assert set(grid.calibration["heldout"]["images"]).isdisjoint(grid.calibration["images"])
        own = make_sampler("mrs-ode-2-data", network.schedule, "noise").timesteps(1)
        assert float(grid.timesteps[0]) == float(own[0]) and float(grid.timesteps[-1]) == float(
            own[-1]
        )
        assert grid.heldout_fidelity_db is not None and grid.fidelity_db > 0


def test_the_heldout_split_is_seeded_disjoint_and_leaves_both_sides_non_empty(user_files):
    images = folder_images(user_files / "cal", "calibration folder", 16)
    for fraction in (0.01, 0.34, 0.5, 0.99):
        for seed in (0, 1):
            kept, held = split_folder(images, fraction, seed)
            assert kept.files and held.files
            assert set(kept.files) | set(held.files) == set(images.files)
            assert not set(kept.files) & set(held.files)
            assert split_folder(images, fraction, seed) == (kept, held)
    with pytest.raises(ValueError, match="at least two"):
        split_folder(FolderImages(images.folder, images.files[:1]), 0.5, 0)


def test_the_help_states_the_defaults_the_library_uses():
    assert tune_cli.DEFAULT_CROPS == calibration.DEFAULT_CROPS
    assert tune_cli.DEFAULT_CROP == calibration.DEFAULT_CROP
    assert tune_cli.DEFAULT_TEACHER_STEPS == teacher.DEFAULT_TEACHER_STEPS
    sampler = make_sampler("mrs-ode-2-data", schedules.get("cosine"), "data")
    for steps in (1, 2, 5):
        starts = fit._starting_grids(sampler, steps, -3.0, 7.0, fit.WARPS)
        assert len(starts) == tune_cli.STARTING_GRIDS
        # the help's formula, 30 + 10(N − 1) for a grid of N steps
        assert fit.default_max_evaluations(steps) == 30 + 10 * (steps - 1)
    from mrs_numerics.cli import build_parser

    parser = build_parser()
    tune = parser._subparsers._group_actions[0].choices["tune"]
    text = tune.format_help().replace("\n", " ")
    text = " ".join(text.split())
    assert "default 30 + 10(N−1) for a grid of N steps" in text
    assert f"the {fit_starts()} starting grids are always run" in text
    assert f"(default {calibration.DEFAULT_CROPS})" in text
    assert f"(default {teacher.DEFAULT_TEACHER_STEPS})" in text
    assert "40 + 25" not in text


def fit_starts() -> int:
    sampler = make_sampler("mrs-ode-3-data", schedules.get("cosine"), "data")
    return len(fit._starting_grids(sampler, 4, -3.0, 7.0, fit.WARPS))


def test_the_grid_file_is_json_that_names_its_format(tmp_path):
    path = tmp_path / "g.json"
    save_grids(path, [_grid("denoise-data")])
    assert json.loads(path.read_text())["grids"][0]["network"]["name"] == "denoise-data"
    with pytest.raises(FileExistsError):
        save_grids(path, [_grid("denoise-data")])
