"""Folders, batches and processes: a seed per image name, batches, failures isolated, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from mrs_numerics.cli import main
from mrs_numerics.imaging.degradations import degrade
from mrs_numerics.imaging.files import read_image, write_image
from mrs_numerics.imaging.photos import center_crop, load_photo
from mrs_numerics.models import ConditionalUNet
from mrs_numerics.restoration.folders import ImageJob, image_seed, restore_jobs
from mrs_numerics.restoration.processes import Processes, environment_world, processes
from tests.helpers import patch_shipped_registry

TINY_UNET = {"base_channels": 8, "channel_mults": (1, 2, 2), "time_embedding_dim": 16}
ROUND_OFF = 1 / 255 + 1e-6
"""Batched and single runs differ by float32 round-off, at most one 8-bit level once written."""


@pytest.fixture
def shipped(monkeypatch):
    """The registry hands out an untrained tiny UNet as the 'denoise' network."""
    return patch_shipped_registry(
        monkeypatch, lambda: ConditionalUNet.random_init_for_benchmarks(0, **TINY_UNET).eval()
    )


def _degraded(photo: str, size: tuple[int, int], seed: int) -> torch.Tensor:
    clean = center_crop(load_photo(photo), size)
    return degrade("denoise", clean, torch.Generator().manual_seed(seed)).clamp(0.0, 1.0)


FILES = {
    "a.png": ("astronaut", (16, 16)),
    "b.png": ("chelsea", (16, 16)),
    "c.png": ("coffee", (12, 20)),
    "sub/d.png": ("astronaut", (16, 16)),
    "e.png": ("chelsea", (12, 20)),
}


def _folder(root: Path, names=tuple(FILES)) -> Path:
    for index, name in enumerate(names):
        photo, size = FILES[name]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(root / name, _degraded(photo, size, index))
    return root


def _restore(source: Path, out: Path, *options: str) -> int:
    return main(
        ["restore", str(source), "-o", str(out), "--task", "denoise", "--nfe", "3", *options]
    )


# ---------------------------------------------------------------------------------------------
# seeds and sharding
# ---------------------------------------------------------------------------------------------


def test_image_seed_is_fixed_by_the_seed_and_the_name_alone():
    names = ["a.png", "b.png", "sub/a.png", "a.PNG"]
    seeds = {(seed, name): image_seed(seed, name) for seed in (0, 1, -3) for name in names}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= value < 2**63 for value in seeds.values())
    code = (
        "from mrs_numerics.restoration.folders import image_seed; print(image_seed(7, 'x/y.png'))"
    )
    printed = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }  # hash() is salted per process: a seed built on it would differ between these
    assert printed == {str(image_seed(7, "x/y.png"))}


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("count", [0, 1, 4, 7])
def test_shards_deal_every_item_exactly_once_by_sorted_index(world, count):
    items = list(range(count))
    shards = [Processes(rank, world, torch.device("cpu")).shard(items) for rank in range(world)]
    assert sorted(item for shard in shards for item in shard) == items
    assert all(shard == items[rank::world] for rank, shard in enumerate(shards))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_a_malformed_torchrun_environment_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="RANK/LOCAL_RANK are missing"):
        environment_world()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="outside 0"):
        environment_world()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert environment_world() == (1, 0, 0)


def test_under_torchrun_cuda_processes_take_their_local_gpu(monkeypatch):
    """The CUDA branch, with the process group and CUDA calls recorded (no GPU here).

    The group is gloo on every device: it only gathers small Python objects at the end.
    """
    from mrs_numerics.restoration import processes as module

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(module, "_join", lambda rank, world: calls.append(f"join {rank}/{world}"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroyed"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(str(device)))
    with processes(torch.device("cuda")) as group:
        assert (group.rank, group.world, str(group.device)) == (3, 4, "cuda:1")
        assert not group.main and group.shard(list(range(10))) == [3, 7]
    assert calls == ["cuda:1", "join 3/4", "destroyed"]
    calls.clear()
    with processes(torch.device("cpu")) as group:
        assert str(group.device) == "cpu"
    assert calls == ["join 3/4", "destroyed"]
    monkeypatch.setenv("LOCAL_RANK", "2")
    with (
        pytest.raises(ValueError, match="has no GPU: 2 visible"),
        processes(torch.device("cuda")),
    ):
        pass


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------


def test_batches_hold_images_of_one_size_and_every_image_is_written(tmp_path):
    source = _folder(tmp_path / "in")
    jobs = [
        ImageJob(source / name, tmp_path / "out" / f"{i}.png", name, i)
        for i, name in enumerate(FILES)
    ]
    (tmp_path / "out").mkdir()
    runs = []

    def run(images, batch):
        runs.append((tuple(images.shape), tuple(job.seed for job in batch)))
        return images, 1

    outcomes = list(restore_jobs(jobs, run, batch_size=2))
    assert [outcome.job.name for outcome in outcomes] == [
        "a.png",
        "b.png",
        "c.png",
        "e.png",
        "sub/d.png",
    ]
    assert runs == [((2, 3, 16, 16), (0, 1)), ((2, 3, 12, 20), (2, 4)), ((1, 3, 16, 16), (3,))]
    for job in jobs:
        assert torch.equal(read_image(job.target), read_image(job.source))


def test_an_output_depends_on_its_image_name_and_seed_not_on_the_other_files(shipped, tmp_path):
    everything = _folder(tmp_path / "all")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "b.png").write_bytes((everything / "b.png").read_bytes())
    (alone / "renamed.png").write_bytes((everything / "b.png").read_bytes())
    assert _restore(everything, tmp_path / "out-all") == 0
    assert _restore(alone, tmp_path / "out-alone") == 0
    assert _restore(alone, tmp_path / "out-seed", "--seed", "1") == 0
    b = read_image(tmp_path / "out-all" / "b.png")
    assert torch.equal(read_image(tmp_path / "out-alone" / "b.png"), b)
    assert not torch.equal(read_image(tmp_path / "out-alone" / "renamed.png"), b)
    assert not torch.equal(read_image(tmp_path / "out-seed" / "b.png"), b)
    assert read_image(tmp_path / "out-all" / "sub" / "d.png").shape == (3, 16, 16)


@pytest.mark.parametrize(
    "options",
    [[], ["--tile", "8", "--tile-overlap", "4"], ["--grid", "time", "--seed", "5"]],
    ids=["plain", "tiles", "grid"],
)
def test_batched_runs_equal_single_runs_within_round_off(shipped, tmp_path, capsys, options):
    source = _folder(tmp_path / "in")
    assert _restore(source, tmp_path / "one", *options) == 0
    assert _restore(source, tmp_path / "three", "--batch-size", "3", *options) == 0
    if "--tile" in options:
        assert " tiles)" in capsys.readouterr().out
    for name in FILES:
        png = Path(name).with_suffix(".png")
        single, batched = (read_image(tmp_path / out / png) for out in ("one", "three"))
        assert (single - batched).abs().max() <= ROUND_OFF


class DivergesOnBrightImages:
    """A data model that predicts μ, except for images brighter than 0.9 on average."""

    def __call__(self, x, t, mu):
        bright = (mu.mean(dim=(1, 2, 3), keepdim=True) > 0.9).to(mu.dtype)
        return mu + 100.0 * bright


def test_one_failing_image_of_a_batch_fails_alone(monkeypatch, tmp_path, capsys):
    patch_shipped_registry(monkeypatch, DivergesOnBrightImages)
    source = _folder(tmp_path / "in", ("a.png", "b.png"))
    write_image(source / "white.png", torch.full((3, 16, 16), 0.95))
    argv = ["--sampler", "mrs-ode-2-data", "--batch-size", "3"]
    assert _restore(source, tmp_path / "out", *argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "white.png: the sampler diverged at step" in lines[0]
    assert lines[0].startswith("mrs-numerics restore: failed: ")
    assert "restored 2 of 3 image(s)" in captured.out and "; 1 failed" in captured.out
    assert not (tmp_path / "out" / "white.png").exists()
    assert _restore(source, tmp_path / "single", "--sampler", "mrs-ode-2-data") == 1
    assert capsys.readouterr().err.count("white.png") == 1
    for name in ("a.png", "b.png"):
        assert torch.equal(
            read_image(tmp_path / "out" / name), read_image(tmp_path / "single" / name)
        )
    assert _restore(source, tmp_path / "allowed", *argv, "--allow-divergence") == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and "white.png: the sampler diverged" in warnings[0]
    assert warnings[0].startswith("mrs-numerics restore: warning: ")
    assert (tmp_path / "allowed" / "white.png").is_file()


def test_a_tile_that_diverges_fails_its_image_alone(monkeypatch, tmp_path, capsys):
    patch_shipped_registry(monkeypatch, DivergesOnBrightImages)
    source = _folder(tmp_path / "in", ("a.png",))
    write_image(source / "white.png", torch.full((3, 16, 16), 0.95))
    argv = ["--sampler", "mrs-ode-2-data", "--tile", "8", "--tile-overlap", "4"]
    assert _restore(source, tmp_path / "out", *argv, "--batch-size", "2") == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "white.png: the sampler diverged at step" in lines[0]
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "white.png").exists()


def test_a_bad_batch_size_is_refused(shipped, tmp_path, capsys):
    source = _folder(tmp_path / "in", ("a.png",))
    assert _restore(source, tmp_path / "out", "--batch-size", "0") == 2
    assert "--batch-size must be ≥ 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# torchrun: two CPU processes (gloo) against one
# ---------------------------------------------------------------------------------------------


def _torchrun(*argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "mrs_numerics", *argv, "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_torchrun_restore_equals_one_process(tmp_path):
    source = _folder(tmp_path / "in")
    argv = ["restore", str(source), "--task", "denoise", "--nfe", "3", "-q"]
    assert main([*argv, "-o", str(tmp_path / "one"), "--threads", "1"]) == 0
    result = _torchrun(*argv, "-o", str(tmp_path / "two"))
    assert result.stdout.count("restored 5 of 5 image(s) in 2 processes") == 1
    for name in FILES:
        assert result.stdout.count(f"{name} -> ") == 1
    _torchrun(*argv, "-o", str(tmp_path / "two-batched"), "--batch-size", "2")
    for name in FILES:
        png = Path(name).with_suffix(".png")
        one = read_image(tmp_path / "one" / png)
        assert torch.equal(read_image(tmp_path / "two" / png), one)
        assert (read_image(tmp_path / "two-batched" / png) - one).abs().max() <= ROUND_OFF


def test_torchrun_quality_benchmark_equals_one_process(tmp_path):
    argv = ["benchmark", "quality", "--task", "denoise", "--quick", "--crop", "20", "--seeds", "3"]
    argv += ["--nfe", "3", "--samplers", "mrs-ode-2-data,mrs-sde-1-data", "--no-progress"]
    argv += ["--reference-steps", "20"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main([*argv, "--out", str(tmp_path / "one"), "--json", str(one)]) == 0
    _torchrun(*argv, "--out", str(tmp_path / "two"), "--json", str(two))
    single, sharded = json.loads(one.read_text()), json.loads(two.read_text())
    assert sharded["metadata"]["processes"] == 2
    for row, other in zip(single["rows"], sharded["rows"], strict=True):
        assert row["status"] == other["status"] == "ok"
        for metric in ("psnr", "ssim", "fidelity_db", "nfe"):
            assert row[metric] == other[metric], (row, other)
    for key in ("references", "input_psnr", "input_ssim"):
        assert single["metadata"][key] == sharded["metadata"][key]


def test_torchrun_reports_each_failure_once_and_the_job_fails(tmp_path):
    """A random IR-SDE network (a checkpoint) diverges on every image, dealt to 2 processes."""
    fixtures = Path(__file__).resolve().parent / "fixtures" / "irsde"
    fixture = torch.load(fixtures / "irsde_conditional_unet_small.pt", weights_only=True)
    torch.save(fixture["state_dict"], tmp_path / "ir-sde.pth")
    source = _folder(tmp_path / "in", ("a.png", "b.png", "c.png"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "mrs_numerics", "restore", str(source), "-o"]
    command += [str(tmp_path / "out"), "--checkpoint", str(tmp_path / "ir-sde.pth"), "--config"]
    command += [str(fixtures / "irsde-options.yml"), "--nfe", "5", "--batch-size", "2", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    failures = [line for line in result.stderr.splitlines() if "restore: failed: " in line]
    assert sorted(
        line.split(": failed: ")[1].split(":")[0].rsplit("/", 1)[1] for line in failures
    ) == [
        "a.png",
        "b.png",
        "c.png",
    ]
    assert result.stdout.count("restored 0 of 3 image(s) in 2 processes") == 1
    assert "; 3 failed" in result.stdout
    assert not list((tmp_path / "out").glob("*.png"))
