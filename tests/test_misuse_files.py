"""Misuse of the files the package writes: nothing is replaced or half-written silently, every
folder run leaves a true record, and every outcome has its exit status (docs/misuse/files.md)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from mrs_numerics._errors import InputError
from mrs_numerics._files import OutputExistsError
from mrs_numerics._interrupts import Interrupted
from mrs_numerics.cli import main
from mrs_numerics.imaging.files import image_files, read_image, write_image
from mrs_numerics.imaging.photos import center_crop, load_photo
from mrs_numerics.restoration import folders
from mrs_numerics.restoration.manifest import MANIFEST_NAME, file_sha256
from mrs_numerics.restoration.restore import plan_tiles
from mrs_numerics.restoration.tiling import estimate_bytes, network_bytes_per_pixel
from tests.helpers import patch_shipped_registry

torch.set_num_threads(1)

RUN = ["--task", "denoise", "--sampler", "mrs-ode-2-data", "--nfe", "2"]


class Counting:
    """A data model that depends on x (so that the seed matters) and counts its calls."""

    required_multiple = 1

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, mu):
        self.calls += 1
        return mu + 0.1 * (x - mu)


@pytest.fixture
def network(monkeypatch):
    """The shipped 'denoise' network replaced by one Counting model (its calls are counted)."""
    model = Counting()
    patch_shipped_registry(monkeypatch, lambda: model)
    return model


def _images(folder: Path, names=("a.png", "b.png", "c.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        photo = ("astronaut", "chelsea", "coffee")[index % 3]
        write_image(folder / name, center_crop(load_photo(photo), (12, 16)))
    return folder


def _restore(source: Path, out: Path, *options: str) -> int:
    return main(["restore", str(source), "-o", str(out), *RUN, *options])


def _manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())


def _entries(out: Path) -> dict[str, dict]:
    return {entry["output"]: entry for entry in _manifest(out)["images"]}


def _one_error(capsys, command: str = "restore") -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"mrs-numerics {command}: error: ") and "Traceback" not in err
    return err


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


# ---------------------------------------------------------------------------------------------
# atomic writes and no silent replacement, for every writer
# ---------------------------------------------------------------------------------------------


def test_write_image_never_replaces_an_existing_file_unasked(tmp_path):
    target = tmp_path / "precious.png"
    target.write_bytes(b"my photo")
    image = torch.full((3, 4, 4), 0.5)
    with pytest.raises(OutputExistsError, match=r"precious\.png exists.*overwrite=True"):
        write_image(target, image)
    assert target.read_bytes() == b"my photo"
    write_image(target, image, overwrite=True)
    assert torch.allclose(read_image(target), image, atol=1 / 255)


def test_a_write_killed_midway_leaves_no_partial_file_under_its_name(tmp_path, monkeypatch):
    def dies_midway(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG")  # the first bytes, then the process is stopped
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "x.png", torch.zeros(3, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_leftover_temporary_files_are_not_read_as_images(tmp_path):
    write_image(tmp_path / "a.png", torch.zeros(3, 4, 4))
    (tmp_path / ".b.tmp-0123abcd.png").write_bytes(b"")
    assert image_files(tmp_path) == [tmp_path / "a.png"]


def test_the_verify_json_file_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    from mrs_numerics.verification import driver

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(driver, "run_verification", never)
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"photo")
    argv = ["verify", "--quick", "--out", str(tmp_path / "report"), "--json", str(precious)]
    assert main(argv) == 2
    err = _one_error(capsys, "verify")
    assert "JSON file" in err and "exists and would be replaced; pass --overwrite" in err
    assert precious.read_bytes() == b"photo"
    (tmp_path / "afile").write_text("x")
    assert main(["verify", "--quick", "--out", str(tmp_path / "afile")]) == 2
    err = _one_error(capsys, "verify")
    assert "report folder" in err and "is not a folder" in err


def test_the_benchmark_json_file_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    from mrs_numerics.restoration.quality import run as quality_run

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(quality_run, "run_quality", never)
    precious = tmp_path / "results.json"
    precious.write_text("{}")
    argv = ["benchmark", "quality", "--quick", "--json", str(precious)]
    assert main([*argv, "--out", str(tmp_path / "report")]) == 2
    err = _one_error(capsys, "benchmark")
    assert "results.json exists and would be replaced; pass --overwrite" in err
    assert precious.read_text() == "{}"


def test_report_folders_replace_their_own_files_atomically(tmp_path):
    from mrs_numerics.verification.report import write_report

    first = write_report([], tmp_path / "report", {"conversions": []}, "one")
    second = write_report([], tmp_path / "report", {"conversions": []}, "two")
    assert first == second and "two" in (tmp_path / "report" / "report.md").read_text()
    assert _leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"report folder .*file exists and is not a folder"):
        write_report([], tmp_path / "file")


def test_a_user_schedule_is_not_regenerated_over_an_existing_one_unasked(
    tmp_path, capsys, monkeypatch
):
    from derivations import schedule_codegen

    folder = tmp_path / "schedules"
    argv = ["codegen", "--theta", "1 + t", "--name", "ramp", "--out", str(folder)]
    assert main(argv) == 0
    capsys.readouterr()
    first = (folder / "torch" / "ramp.py").read_text()
    derived = []
    real = schedule_codegen.derive_user_schedule
    monkeypatch.setattr(
        schedule_codegen, "derive_user_schedule", lambda *a: derived.append(a) or real(*a)
    )
    assert main(["codegen", "--theta", "2 + t", "--name", "ramp", "--out", str(folder)]) == 2
    err = _one_error(capsys, "codegen")
    assert "user schedule 'ramp' exists" in err and "pass --overwrite to regenerate" in err
    assert derived == [] and (folder / "torch" / "ramp.py").read_text() == first
    assert (
        main(["codegen", "--theta", "2 + t", "--name", "ramp", "--out", str(folder), "--overwrite"])
        == 0
    )
    assert (folder / "torch" / "ramp.py").read_text() != first and _leftovers(folder) == []


def test_exported_weights_are_not_replaced_unasked(tmp_path):
    from mrs_numerics.models.training import TrainConfig, export
    from mrs_numerics.models.unet import ConditionalUNet

    net = ConditionalUNet(base_channels=4, channel_mults=(1,), time_embedding_dim=8)
    config = TrainConfig()
    facts = {"seconds": 1.0, "device": "cpu"}
    folder = tmp_path / "weights"
    export(net, config, facts, {}, "mine", folder, "train")
    before = file_sha256(folder / "mine.pt")
    with pytest.raises(OutputExistsError, match=r"exported network .*mine\.pt exists"):
        export(net, config, facts, {}, "mine", folder, "train")
    assert file_sha256(folder / "mine.pt") == before
    export(net, config, facts, {}, "mine", folder, "train", overwrite=True)
    assert json.loads((folder / "index.json").read_text())["mine"]["weights"] == "mine.pt"


# ---------------------------------------------------------------------------------------------
# restore and degrade: outputs checked before the first network call
# ---------------------------------------------------------------------------------------------


def test_an_existing_output_file_is_refused_before_the_network_runs(network, tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png",)) / "a.png"
    out = tmp_path / "x.png"
    out.write_bytes(b"precious")
    assert _restore(source, out) == 2
    err = _one_error(capsys)
    assert "x.png exists and would be replaced" in err
    assert "pass --skip-existing" in err and "pass --overwrite to replace them" in err
    assert "=True" not in err  # command-line advice, not Python
    assert out.read_bytes() == b"precious" and network.calls == 0
    assert _restore(source, out, "--overwrite") == 0
    assert read_image(out).shape == (3, 12, 16)


def test_a_folder_whose_third_output_exists_is_refused_at_the_start(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.png").write_bytes(b"precious")
    assert _restore(source, out) == 2
    assert "1 of 3 outputs exist" in _one_error(capsys)
    assert network.calls == 0 and sorted(p.name for p in out.iterdir()) == ["c.png"]


def test_skip_existing_keeps_existing_outputs_and_says_so(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"precious")
    assert _restore(source, out, "--skip-existing") == 0
    captured = capsys.readouterr()
    assert "skipped 1 existing output(s)" in captured.err and "b.png" in captured.err
    assert "not recorded with these settings by a manifest" in captured.err
    assert "restored 2 of 2 image(s)" in captured.out and "1 skipped" in captured.out
    assert (out / "b.png").read_bytes() == b"precious"
    entry = _entries(out)["b.png"]
    assert entry["status"] == "skipped" and entry["reason"] == folders.KEPT_UNKNOWN


def test_library_callers_get_keyword_advice_for_an_existing_output(tmp_path):
    (tmp_path / "b.png").write_bytes(b"precious")
    jobs = [folders.ImageJob(tmp_path / "a.png", tmp_path / "b.png", "a.png", 0)]
    with pytest.raises(InputError) as refused:
        folders.plan_outputs(jobs)
    message = str(refused.value)
    assert "pass skip_existing=True to keep them" in message
    assert "or pass overwrite=True to replace them" in message and "--" not in message


def test_overwrite_and_skip_existing_together_are_refused(tmp_path):
    jobs = [folders.ImageJob(tmp_path / "a.png", tmp_path / "b.png", "a.png", 0)]
    with pytest.raises(InputError, match="contradict each other"):
        folders.plan_outputs(jobs, overwrite=True, skip_existing=True)
    with pytest.raises(SystemExit) as stopped:
        main(["restore", "x", "-o", "y", "--overwrite", "--skip-existing"])
    assert stopped.value.code == 2


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_two_inputs_with_one_output_name_are_refused_up_front(command, network, tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png",))
    write_image(source / "a.jpg", torch.zeros(3, 12, 16))
    argv = RUN if command == "restore" else ["--task", "denoise"]
    assert main([command, str(source), "-o", str(tmp_path / "out"), *argv]) == 2
    err = _one_error(capsys, command)
    assert re.search(r"a\.jpg and .*a\.png → .*a\.png|a\.png and .*a\.jpg → .*a\.png", err)
    assert not (tmp_path / "out").exists() and network.calls == 0


def test_an_output_that_would_land_inside_the_input_folder_is_refused(network, tmp_path, capsys):
    root = tmp_path / "work"
    source = _images(root / "a" / "a", ("x.png",)).parent  # IN = work/a holds a/x.png
    write_image(source / "x.png", torch.zeros(3, 12, 16))  # and x.png: work/a/x.png
    assert _restore(source, root) == 2  # OUT = work: a/x.png → work/a/x.png, an input
    assert "the input" in _one_error(capsys)
    assert network.calls == 0


def test_an_output_that_is_a_hard_link_to_the_input_is_refused(network, tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png",)) / "a.png"
    link = tmp_path / "link.png"
    os.link(source, link)
    before = file_sha256(source)
    assert _restore(source, link, "--overwrite") == 2
    assert "refusing to overwrite the input" in _one_error(capsys)
    assert file_sha256(source) == before


def test_an_unreadable_third_input_is_refused_before_the_network_runs(network, tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png", "b.png"))
    (source / "c.png").write_text("not an image")
    assert _restore(source, tmp_path / "out") == 2
    err = _one_error(capsys)
    assert "1 input(s) cannot be read" in err and "c.png" in err
    assert network.calls == 0 and not (tmp_path / "out").exists()


def test_an_output_that_appears_during_the_run_fails_its_image_only(tmp_path):
    source = _images(tmp_path / "in", ("a.png", "b.png"))
    out = tmp_path / "out"
    out.mkdir()
    jobs = folders.image_jobs([(source / n, out / n) for n in ("a.png", "b.png")], source, seed=0)

    def run(images, batch):
        if batch[0].name == "b.png":
            (out / "b.png").write_bytes(b"someone else's")
        return images, 1

    outcomes = {o.job.name: o for o in folders.restore_jobs(jobs, run)}
    assert outcomes["a.png"].failure == ""
    assert "b.png exists and would be replaced" in outcomes["b.png"].failure
    assert (out / "b.png").read_bytes() == b"someone else's"


def test_degrade_refuses_skips_or_replaces_existing_outputs(tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png", "b.png"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"precious")
    argv = ["degrade", str(source), "-o", str(out), "--task", "denoise"]
    assert main(argv) == 2
    assert "1 of 2 outputs exist" in _one_error(capsys, "degrade")
    assert not (out / "a.png").exists()
    assert main([*argv, "--skip-existing"]) == 0
    assert "skipped 1" in capsys.readouterr().out and (out / "b.png").read_bytes() == b"precious"
    assert main([*argv, "--overwrite"]) == 0
    assert read_image(out / "b.png").shape == (3, 12, 16)


# ---------------------------------------------------------------------------------------------
# the manifest
# ---------------------------------------------------------------------------------------------


def test_a_folder_restore_writes_a_manifest_of_every_image_and_the_run(network, tmp_path):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert _restore(source, out, "--seed", "7") == 0
    document = _manifest(out)
    settings, run = document["settings"], document["run"]
    assert settings["sampler"]["solver_id"] == "mrs-ode-2-data"
    assert settings["sampler"]["options"]["model_prediction"] == "data"
    assert settings["nfe"] == 2 and settings["seed"] == 7 and settings["grid"]["kind"] == "lambda"
    assert settings["network"]["name"] == "tiny-denoise"
    assert run["package_version"] and run["command"].startswith("mrs-numerics restore ")
    for name, entry in _entries(out).items():
        assert entry["status"] == "written" and entry["input"].endswith(name)
        assert entry["seed"] == folders.image_seed(7, name)
        assert entry["sha256"] == file_sha256(out / name)


def test_a_resume_keeps_what_the_manifest_vouches_for(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out, whole = tmp_path / "out", tmp_path / "whole"
    assert _restore(source, whole) == 0
    assert _restore(source, out) == 0
    (out / "b.png").unlink()
    capsys.readouterr()
    calls = network.calls
    assert _restore(source, out, "--skip-existing") == 0
    err = capsys.readouterr().err
    assert "skipped 2 existing output(s)" in err and "not recorded" not in err
    assert network.calls - calls == 2  # one image, NFE 2
    entries = _entries(out)
    assert entries["a.png"]["reason"] == folders.KEPT_MATCHING
    assert entries["b.png"]["status"] == "written"
    for name in ("a.png", "b.png", "c.png"):
        assert torch.equal(read_image(out / name), read_image(whole / name))


def test_a_resume_with_other_settings_is_refused_naming_the_difference(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert _restore(source, out) == 0
    capsys.readouterr()
    calls = network.calls
    assert _restore(source, out, "--skip-existing", "--seed", "3") == 2
    err = _one_error(capsys)
    assert "records outputs made with other settings (seed: 0 → 3)" in err
    assert "pass --overwrite to replace them" in err and network.calls == calls
    assert _restore(source, out, "--overwrite", "--seed", "3") == 0
    assert _manifest(out)["settings"]["seed"] == 3


def test_an_output_changed_since_it_was_written_is_not_vouched_for(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert _restore(source, out) == 0
    write_image(out / "a.png", torch.zeros(3, 12, 16), overwrite=True)  # edited by hand
    capsys.readouterr()
    assert _restore(source, out, "--skip-existing") == 0
    assert "1 of them not recorded with these settings" in capsys.readouterr().err
    assert _entries(out)["a.png"]["reason"] == folders.KEPT_UNKNOWN


def test_a_corrupt_manifest_is_refused_naming_it(network, tmp_path, capsys):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text("{ not json")
    assert _restore(source, out) == 2
    err = _one_error(capsys)
    assert f"manifest {out / MANIFEST_NAME} cannot be read" in err and "--overwrite" in err
    assert _restore(source, out, "--overwrite") == 0


def test_a_failed_image_is_recorded_with_its_reason_and_exits_1(monkeypatch, tmp_path, capsys):
    class DivergesOnBright:
        def __call__(self, x, t, mu):
            return mu + 100.0 * (mu.mean() > 0.9).to(mu.dtype)

    patch_shipped_registry(monkeypatch, DivergesOnBright)
    source = _images(tmp_path / "in", ("a.png",))
    write_image(source / "white.png", torch.full((3, 12, 16), 0.95))
    out = tmp_path / "out"
    assert _restore(source, out) == 1
    assert "white.png: the sampler diverged" in capsys.readouterr().err
    entries = _entries(out)
    assert entries["a.png"]["status"] == "written"
    assert entries["white.png"]["status"] == "failed"
    assert "diverged" in entries["white.png"]["reason"]


# ---------------------------------------------------------------------------------------------
# interruption and exit statuses
# ---------------------------------------------------------------------------------------------


def test_ctrl_c_during_a_write_ends_with_one_line_and_a_true_manifest(
    network, tmp_path, capsys, monkeypatch
):
    source = _images(tmp_path / "in")
    out = tmp_path / "out"
    real_save = Image.Image.save
    saves = []

    def save(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 2:
            Path(fp).write_bytes(b"")
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    assert _restore(source, out) == 130
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0].startswith("mrs-numerics restore: interrupted (SIGINT): restored 1 of 3")
    assert "not written: 2" in lines[0] and "pass --skip-existing to resume" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", MANIFEST_NAME]
    statuses = {name: entry["status"] for name, entry in _entries(out).items()}
    assert statuses == {"a.png": "written", "b.png": "pending", "c.png": "pending"}


def test_a_rerun_exits_2_when_refused_and_0_when_everything_is_skipped(network, tmp_path, capsys):
    source = _images(tmp_path / "in", ("a.png",))
    assert _restore(source, tmp_path / "out") == 0
    assert _restore(source, tmp_path / "out") == 2
    calls = network.calls
    assert _restore(source, tmp_path / "out", "--skip-existing") == 0  # nothing left: done
    assert network.calls == calls and "restored 0 of 0 image(s)" in capsys.readouterr().out
    assert Interrupted().exit_status == 130
    assert Interrupted(signal_number=signal.SIGTERM).exit_status == 143


DRIVER = textwrap.dedent(
    """
    import sys, time, types
    import mrs_numerics.models.registry as registry
    from mrs_numerics.cli import main

    info = types.SimpleNamespace(
        task="denoise", prediction="data", schedule="cosine", max_sigma=50 / 255
    )

    def slow(x, t, mu):
        time.sleep(0.4)
        return mu + 0.1 * (x - mu)

    registry.load_model = lambda name, device="cpu": (slow, info)
    registry.model_for_task = lambda task, prediction=None: "tiny-denoise"
    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigterm_mid_run_ends_with_status_143_one_line_and_no_partial_file(tmp_path):
    source = _images(tmp_path / "in", ("a.png", "b.png", "c.png", "d.png"))
    out = tmp_path / "out"
    argv = ["restore", str(source), "-o", str(out), *RUN, "--threads", "1"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    deadline = time.monotonic() + 120
    while not (out / "a.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert re.match(r"mrs-numerics restore: interrupted \(SIGTERM\): restored [12] of 4", err)
    assert _leftovers(out) == []
    entries = _entries(out)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        written = (out / name).exists()
        assert (entries[name]["status"] == "written") == written
        assert not written or entries[name]["sha256"] == file_sha256(out / name)


# ---------------------------------------------------------------------------------------------
# help texts that must hold
# ---------------------------------------------------------------------------------------------


class Multiple8(Counting):
    required_multiple = 8


def test_max_memory_budgets_the_whole_batch_as_its_help_says():
    model = Multiple8()
    one_image = estimate_bytes(1, 256 * 256, None, network_bytes_per_pixel(model))
    assert plan_tiles((1, 3, 256, 256), model, max_memory=one_image) is None
    assert plan_tiles((2, 3, 256, 256), model, max_memory=one_image) is not None


@pytest.mark.parametrize(("tile", "side"), [(20, 16), (5, 8), (8, 8), (16, 16)])
def test_the_tile_side_is_rounded_as_the_help_says(tile, side):
    # a tile of one multiple gets no default overlap (it used to be refused as "use a smaller
    # overlap", though none was given)
    tiles = plan_tiles((3, 64, 64), Multiple8(), tile=tile)
    assert tiles is not None and max(max(t.size) for t in tiles) == side


def test_a_signal_during_a_deferred_section_is_raised_when_the_section_ends():
    from mrs_numerics._interrupts import deferred, signals_interrupt

    steps = []
    with pytest.raises(Interrupted) as raised, signals_interrupt():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("after the signal")  # the section runs to its end
        steps.append("after the section")  # never reached: the held signal is raised
    assert steps == ["after the signal"]
    assert raised.value.exit_status == 143
