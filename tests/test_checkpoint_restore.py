"""``mrs-numerics restore --checkpoint``: an IR-SDE/DA-CLIP checkpoint restores like the library.

The fixture networks are random initialisations (their runs diverge, so the runs here allow it):
the tests check the wiring (weights, option file, schedule, time convention, contexts, seeds),
not restoration quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from mrs_numerics.cli import main
from mrs_numerics.imaging.files import from_uint8, read_image, to_uint8, write_image
from mrs_numerics.restoration import restore
from mrs_numerics.restoration.checkpoint import checkpoint_network
from mrs_numerics.restoration.folders import image_seed

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "irsde"
NETWORKS = {
    "irsde": ("irsde_conditional_unet_small.pt", "irsde-options.yml"),
    "daclip": ("daclip_conditional_unet_small.pt", "daclip-options.yml"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Per arch: the checkpoint (DA-CLIP's wrapped as {"params": …}), option file, contexts;
    and a 20×28 image (not a multiple of the networks' strides)."""
    root = tmp_path_factory.mktemp("checkpoints")
    made = {}
    for arch, (name, options) in NETWORKS.items():
        fixture = torch.load(FIXTURES / name, map_location="cpu", weights_only=True)
        state = fixture["state_dict"]
        torch.save({"params": state} if arch == "daclip" else state, root / f"{arch}.pth")
        contexts = []
        if arch == "daclip":
            for context in ("text_context", "image_context"):
                torch.save(fixture["inputs"][context][0].clone(), root / f"{context}.pt")
                flag = "--" + context.replace("_", "-")
                contexts += [flag, str(root / f"{context}.pt")]
        made[arch] = (root / f"{arch}.pth", FIXTURES / options, contexts)
    image = fixture["inputs"]["cond"][0].clamp(0.0, 1.0)
    write_image(root / "lq.png", image)
    made["image"] = root / "lq.png"
    return made


def _argv(files, arch: str, out: Path, *extra: str) -> list[str]:
    checkpoint, options, contexts = files[arch]
    argv = ["restore", str(files["image"]), "-o", str(out), "--checkpoint", str(checkpoint)]
    argv += ["--config", str(options), "--nfe", "5", "--sampler", "mrs-ode-2-data"]
    return [*argv, "--allow-divergence", "-q", *contexts, *extra]


def _library(files, arch: str, round_time: bool = False) -> torch.Tensor:
    """The library's restoration of the image file, as the CLI writes it (8-bit)."""
    checkpoint, options, _ = files[arch]
    contexts = {}
    if arch == "daclip":
        root = checkpoint.parent
        contexts = {name: root / f"{name}.pt" for name in ("text_context", "image_context")}
    network = checkpoint_network(checkpoint, options, round_time=round_time, **contexts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the random network diverges
        restored = restore(
            read_image(files["image"]),
            network.model,
            network.prediction,
            network.schedule,
            "mrs-ode-2-data",
            5,
            seed=[image_seed(0, "lq.png")],
            allow_divergence=True,
        )
    return from_uint8(to_uint8(restored))


@pytest.mark.parametrize("arch", ["irsde", "daclip"])
def test_a_checkpoint_restores_exactly_as_the_library_does(files, arch, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(_argv(files, arch, out)) == 0
    summary = capsys.readouterr().out
    assert f"with {arch}.pth ({arch} checkpoint, noise prediction)" in summary
    assert "on its default lambda grid" in summary
    assert torch.equal(read_image(out), _library(files, arch))


def test_round_time_passes_integer_indices(files, tmp_path):
    rounded, unrounded = tmp_path / "rounded.png", tmp_path / "unrounded.png"
    with pytest.warns(UserWarning, match="rounds fractional times"):  # the λ grid's times
        assert main(_argv(files, "irsde", rounded, "--round-time")) == 0
    assert main(_argv(files, "irsde", unrounded)) == 0
    with pytest.warns(UserWarning, match="rounds fractional times"):
        library = _library(files, "irsde", round_time=True)
    assert torch.equal(read_image(rounded), library)
    assert not torch.equal(read_image(rounded), read_image(unrounded))


def test_a_checkpoint_restores_a_folder_in_batches(files, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(files["image"].read_bytes())
    argv = _argv(files, "daclip", tmp_path / "one")
    argv[1] = str(folder)
    assert main(argv) == 0
    argv[3] = str(tmp_path / "two")
    assert main([*argv, "--batch-size", "2"]) == 0
    a, b = (read_image(tmp_path / "one" / name) for name in ("a.png", "b.png"))
    assert not torch.equal(a, b)  # same pixels, different names: different noise
    for name in ("a.png", "b.png"):
        one, two = (read_image(tmp_path / out / name) for out in ("one", "two"))
        assert (one - two).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda argv: argv[: argv.index("--config")] + argv[argv.index("--config") + 2 :],
            "--checkpoint needs --config FILE",
        ),
        (lambda argv: [*argv, "--task", "denoise"], "--checkpoint replaces --task/--model"),
        (lambda argv: [*argv, "--arch", "daclip"], "describes a 'irsde' network"),
        (lambda argv: [*argv, "--grid", "tuned"], "tuned grids ship only for the shipped"),
        (lambda argv: [*argv, "--text-context", "x.pt"], "only DA-CLIP networks take contexts"),
    ],
)
def test_checkpoint_options_are_refused_clearly(files, tmp_path, capsys, change, message):
    argv = change(_argv(files, "irsde", tmp_path / "out.png"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out.png").exists()


def test_weights_of_another_network_are_refused_naming_the_keys(files, tmp_path, capsys):
    argv = _argv(files, "irsde", tmp_path / "out.png")
    argv[argv.index("--checkpoint") + 1] = str(files["daclip"][0])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit the 'irsde' network" in err and "missing keys" in err


def test_checkpoint_options_need_a_checkpoint(files, tmp_path, capsys):
    argv = ["restore", str(files["image"]), "-o", str(tmp_path / "o.png"), "--task", "denoise"]
    assert main([*argv, "--config", str(files["irsde"][1]), "--round-time"]) == 2
    assert "--config, --round-time need --checkpoint FILE" in capsys.readouterr().err


def test_context_folders_give_each_image_its_own_contexts(files, tmp_path, capsys):
    checkpoint, options, _ = files["daclip"]
    source, contexts = tmp_path / "in", tmp_path / "contexts"
    generator = torch.Generator().manual_seed(0)
    rows = {}
    for name in ("a.png", "sub/b.png"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(files["image"].read_bytes())
        rows[name] = {}
        for context in ("text_context", "image_context"):
            path = contexts / context / Path(name).with_suffix(".pt")
            path.parent.mkdir(parents=True, exist_ok=True)
            rows[name][context] = torch.randn(512, generator=generator)
            torch.save(rows[name][context], path)
    argv = ["restore", str(source), "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint)]
    argv += ["--config", str(options), "--nfe", "5", "--sampler", "mrs-ode-2-data", "-q"]
    argv += ["--text-context", str(contexts / "text_context"), "--batch-size", "2"]
    argv += ["--image-context", str(contexts / "image_context"), "--allow-divergence"]
    assert main(argv) == 0

    def alone(name: str, own: str) -> torch.Tensor:
        network = checkpoint_network(checkpoint, options, **rows[own])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            restored = restore(
                read_image(source / name),
                network.model,
                "noise",
                network.schedule,
                "mrs-ode-2-data",
                5,
                seed=[image_seed(0, name)],
                allow_divergence=True,
            )
        return from_uint8(to_uint8(restored))

    for name in ("a.png", "sub/b.png"):
        written = read_image(tmp_path / "out" / name)
        assert (written - alone(name, name)).abs().max() <= 1 / 255 + 1e-6
    # the random network's outputs saturate once clamped: check the batch's rows on the model
    folders = {context: contexts / context for context in ("text_context", "image_context")}
    batch_model = checkpoint_network(checkpoint, options, **folders).model_for(list(rows))
    x = torch.rand(2, 3, 20, 28, generator=generator)
    t = torch.tensor([40.5, 40.5], dtype=torch.float64)
    with torch.no_grad():
        batched = batch_model(x, t, x)
        models = [checkpoint_network(checkpoint, options, **rows[n]).model for n in rows]
        for i in range(2):
            own, other = models[i], models[1 - i]
            row = slice(i, i + 1)
            mine = own(x[row], t[row], x[row])
            torch.testing.assert_close(batched[row], mine, rtol=0, atol=2e-6)
            # the small random network's prompt moves its output by about 3e-5
            assert (batched[row] - other(x[row], t[row], x[row])).abs().max() > 1e-5
    (contexts / "text_context" / "a.pt").unlink()
    assert main([*argv[:3], str(tmp_path / "again"), *argv[4:]]) == 2
    err = capsys.readouterr().err
    assert "1 per-image context file(s) missing" in err and "a.pt" in err
    assert not (tmp_path / "again").exists() or not list((tmp_path / "again").rglob("*.png"))
