"""Files from users are parsed, not trusted: torch files, option files and DA-CLIP contexts.

Each bad file gives one line naming the file (and the field) and what was expected, on the
command line with exit status 2 and before any image is restored; no code from a file runs.
The table of cases is ``docs/misuse/parsing.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mrs_numerics._errors import InputError
from mrs_numerics.cli import main
from mrs_numerics.imaging.files import write_image
from mrs_numerics.models.checkpoints import (
    irsde_schedule,
    load_context,
    parse_options,
    read_irsde_checkpoint,
    read_options,
)
from mrs_numerics.models.input_files import (
    TENSOR,
    MissingInputError,
    load_torch_file,
    read_mapping_file,
)
from mrs_numerics.models.irsde_options import ARCHITECTURES, SCHEDULES, SETTING_CHECKS
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet
from mrs_numerics.restoration.checkpoint import checkpoint_network

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "irsde"
IRSDE_OPTIONS = yaml.safe_load((FIXTURES / "irsde-options.yml").read_text())
DACLIP_OPTIONS = yaml.safe_load((FIXTURES / "daclip-options.yml").read_text())
DELETE = object()
"""A mutation that removes the field."""


class _Payload:
    """A pickle that would create a folder when loaded without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The two fixture networks as checkpoints with their option files and contexts, an image."""
    root = tmp_path_factory.mktemp("parsing")
    for arch in ("irsde", "daclip"):
        name = f"{arch}_conditional_unet_small.pt"
        fixture = torch.load(FIXTURES / name, map_location="cpu", weights_only=True)
        torch.save(fixture["state_dict"], root / f"{arch}.pth")
    (root / "ir-sde.yml").write_text(yaml.safe_dump(IRSDE_OPTIONS))
    (root / "daclip.yml").write_text(yaml.safe_dump(DACLIP_OPTIONS))
    generator = torch.Generator().manual_seed(0)
    torch.save(torch.randn(512, generator=generator), root / "text.pt")
    torch.save(torch.randn(512, generator=generator), root / "image.pt")
    write_image(root / "lq.png", torch.rand(3, 20, 28, generator=generator))
    return {
        "root": root,
        "irsde": root / "irsde.pth",
        "daclip": root / "daclip.pth",
        "ir-sde.yml": root / "ir-sde.yml",
        "daclip.yml": root / "daclip.yml",
        "text": root / "text.pt",
        "image": root / "image.pt",
        "lq": root / "lq.png",
    }


def _restore(files, tmp_path, capsys, *extra: str, checkpoint=None, config=None, source=None):
    """(exit status, stderr, output path) of ``restore`` with an IR-SDE checkpoint by default."""
    out = tmp_path / ("out" if source is not None else "out.png")
    argv = ["restore", str(source or files["lq"]), "-o", str(out)]
    argv += ["--checkpoint", str(checkpoint or files["irsde"])]
    argv += ["--config", str(config or files["ir-sde.yml"])]
    argv += ["--nfe", "5", "--sampler", "mrs-ode-2-data", "--allow-divergence", "-q", *extra]
    code = main(argv)
    return code, capsys.readouterr().err, out


def _refused_in_one_line(code: int, err: str, out: Path, *phrases: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("mrs-numerics restore: error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    written = list(out.rglob("*.png")) if out.is_dir() else [out] if out.exists() else []
    assert not written, written


# ---- one loader policy for torch files ----


def _bad_checkpoint(kind: str, root: Path, weights: Path) -> Path:
    """A file of ``kind`` that is not a usable state dict."""
    path = root / f"{kind}.pth"
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("these are not weights\n")
    elif kind == "options":
        path.write_text(yaml.safe_dump(IRSDE_OPTIONS))
    elif kind == "png":
        write_image(path.with_suffix(".png"), torch.zeros(3, 4, 4))
        path.write_bytes(path.with_suffix(".png").read_bytes())
    elif kind == "safetensors":
        header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
        path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(4))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights.txt", "1 2 3")
    elif kind == "truncated":
        data = weights.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "numpy":
        torch.save({"init_conv.weight": torch.zeros(2).numpy()}, path)
    elif kind == "nan":
        state = torch.load(weights, weights_only=True)
        state["init_conv.weight"] = torch.full_like(state["init_conv.weight"], float("nan"))
        torch.save(state, path)
    elif kind == "no state dict":
        torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, path)
    return path


BAD_CHECKPOINTS = {
    "missing": "checkpoint {path} does not exist",
    "folder": "checkpoint {path} is a folder, not a file",
    "empty": "checkpoint {path} is empty (0 bytes)",
    "text": "is a text file beginning 'these are not weights', not a torch file",
    "options": "is a text file (it looks like an option file)",
    "png": "is a PNG image, not a torch file",
    "safetensors": "is a safetensors file (convert it once with torch.save(",
    "zip": "is a zip archive but not a torch file (it holds weights.txt, no data.pkl)",
    "truncated": "is a damaged or truncated",
    "tensor": "holds one tensor of shape (3,) (torch.float32); expected a state dict",
    "numpy": "is a pickle that needs numpy",
    "nan": "holds values that are not finite (NaN or infinite) in 1 tensors (init_conv.weight)",
    "no state dict": "holds no state dict",
}


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_file_is_refused_in_one_line_saying_what_it_is(
    kind, files, tmp_path, capsys
):
    path = _bad_checkpoint(kind, tmp_path, files["irsde"])
    code, err, out = _restore(files, tmp_path, capsys, checkpoint=path)
    _refused_in_one_line(code, err, out, BAD_CHECKPOINTS[kind].format(path=path))
    if kind not in ("missing", "folder", "empty", "nan", "no state dict"):
        assert "expected a state dict" in err


@pytest.mark.parametrize("save", ["pickle", "torch.save"])
def test_a_pickle_with_code_is_refused_and_its_code_never_runs(save, files, tmp_path, capsys):
    marker, path = tmp_path / "ran", tmp_path / "payload.pth"
    if save == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    else:
        torch.save(_Payload(marker), path)
    code, err, out = _restore(files, tmp_path, capsys, checkpoint=path)
    _refused_in_one_line(code, err, out, "is a pickle that needs posix.mkdir to load")
    assert "nothing from it was run" in err
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_a_whole_pickled_network_is_refused_saying_how_to_save_a_state_dict(
    legacy, files, tmp_path, capsys
):
    path = tmp_path / "module.pth"
    torch.save(
        IRSDEConditionalUNet(3, 3, 8, depth=2), path, _use_new_zipfile_serialization=not legacy
    )
    code, err, out = _restore(files, tmp_path, capsys, checkpoint=path)
    network = "mrs_numerics.models.irsde_unet.IRSDEConditionalUNet"
    _refused_in_one_line(code, err, out, f"holds a whole pickled network ({network})")
    assert "torch.save(model.state_dict(), PATH)" in err


def test_a_dict_where_a_tensor_belongs_is_refused_naming_its_keys(files, tmp_path):
    path = tmp_path / "context.pt"
    torch.save({"degra_context": torch.zeros(512)}, path)
    with pytest.raises(InputError, match=r"holds a dict with the keys degra_context; expected one"):
        load_torch_file(path, TENSOR, "the text context")
    with pytest.raises(MissingInputError):  # also a FileNotFoundError, for library callers
        load_torch_file(tmp_path / "absent.pt", TENSOR)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_checkpoint_is_identified_by_the_sha256_of_its_bytes(legacy, files, tmp_path):
    state = torch.load(files["irsde"], weights_only=True)
    path = tmp_path / "weights.pth"
    torch.save({"params": state}, path, _use_new_zipfile_serialization=not legacy)
    loaded = read_irsde_checkpoint(path, files["ir-sde.yml"])
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(loaded.network.state_dict()["init_conv.weight"], state["init_conv.weight"])
    network = checkpoint_network(files["irsde"], files["ir-sde.yml"])
    assert network.sha256 == hashlib.sha256(files["irsde"].read_bytes()).hexdigest()
    assert network.sha256 != loaded.sha256  # other bytes, other identity (same weights)


def test_a_training_checkpoint_not_written_by_train_is_refused(tmp_path):
    from mrs_numerics.models.training import TrainConfig, train

    (tmp_path / "checkpoint.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match=r"training checkpoint .* is a text file"):
        train(TrainConfig(iterations=1, batch=1, crop=8), tmp_path, resume=True, progress=False)
    torch.save({"net": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(InputError, match="lacks ema, optimizer, generator, step, seconds"):
        train(TrainConfig(iterations=1, batch=1, crop=8), tmp_path, resume=True, progress=False)


# ---- option files, field by field ----


def _mutated(options: dict, path: str, value: Any) -> dict:
    changed = copy.deepcopy(options)
    *parents, last = path.split(".")
    section = changed
    for name in parents:
        section = section[name]
    if value is DELETE:
        del section[last]
    else:
        section[last] = value
    return changed


OPTION_CASES = [
    (IRSDE_OPTIONS, "network_G", DELETE, "the options have no network_G section"),
    (IRSDE_OPTIONS, "network_G.setting", DELETE, "network_G has no 'setting'"),
    (IRSDE_OPTIONS, "network_G", [1, 2], "network_G must be a mapping"),
    (IRSDE_OPTIONS, "sde", 50, "sde must be a mapping (a section of fields), got 50"),
    (IRSDE_OPTIONS, "sde.schedule", DELETE, "sde lacks schedule"),
    (IRSDE_OPTIONS, "sde.max_sigma", "50", "sde.max_sigma must be a number in (0, 255]"),
    (IRSDE_OPTIONS, "sde.max_sigma", 0, "sde.max_sigma must be a number in (0, 255]"),
    (IRSDE_OPTIONS, "sde.max_sigma", 300, "sde.max_sigma must be a number in (0, 255]"),
    (IRSDE_OPTIONS, "sde.T", 0, "sde.T must be an integer in [1, 100000]"),
    (IRSDE_OPTIONS, "sde.T", -5, "sde.T must be an integer in [1, 100000]"),
    (IRSDE_OPTIONS, "sde.T", 100.5, "sde.T must be an integer in [1, 100000]"),
    (IRSDE_OPTIONS, "sde.T", "100", "IR-SDE uses 100), got '100' (text)"),
    (IRSDE_OPTIONS, "sde.T", 10**9, "sde.T must be an integer in [1, 100000]"),
    (IRSDE_OPTIONS, "sde.eps", 0, "sde.eps must be a number in (0, 1)"),
    (IRSDE_OPTIONS, "sde.eps", 1, "sde.eps must be a number in (0, 1)"),
    (IRSDE_OPTIONS, "sde.eps", 1.5, "sde.eps must be a number in (0, 1)"),
    (IRSDE_OPTIONS, "sde.schedule", "sigmoid", "sde.schedule must be one of cosine, linear, "),
    (IRSDE_OPTIONS, "network_G.which_model_G", "ConditionalNAFNet", "is not supported"),
    (IRSDE_OPTIONS, "arch", "nafnet", "unknown arch 'nafnet'"),
    (
        IRSDE_OPTIONS,
        "network_G.setting.nf",
        "64a",
        "network_G.setting.nf must be a positive integer, got '64a'",
    ),
    (IRSDE_OPTIONS, "network_G.setting.nf", 0, "network_G.setting.nf must be a positive integer"),
    (IRSDE_OPTIONS, "network_G.setting.in_nc", 3.0, "network_G.setting.in_nc must be a positive"),
    (IRSDE_OPTIONS, "network_G.setting.depth", True, "network_G.setting.depth must be a positive"),
    (IRSDE_OPTIONS, "network_G.setting.nff", 8, "unknown arguments for the 'irsde' network: nff"),
    (IRSDE_OPTIONS, "network_G.setting.out_nc", DELETE, "network_G.setting lacks out_nc"),
    (
        DACLIP_OPTIONS,
        "network_G.setting.use_image_context",
        "false",
        "network_G.setting.use_image_context must be true or false, got 'false'",
    ),
    (
        DACLIP_OPTIONS,
        "network_G.setting.ch_mult",
        [],
        "network_G.setting.ch_mult must be a non-empty list",
    ),
    (
        DACLIP_OPTIONS,
        "network_G.setting.ch_mult",
        [1, "2", 1, 1],
        "network_G.setting.ch_mult[1] must be a positive integer",
    ),
    (
        DACLIP_OPTIONS,
        "network_G.setting.context_dim",
        "512",
        "network_G.setting.context_dim must be an integer",
    ),
]


@pytest.mark.parametrize(("base", "path", "value", "message"), OPTION_CASES)
@pytest.mark.parametrize("suffix", [".yml", ".json"])
def test_an_option_field_of_the_wrong_type_or_range_is_named_with_the_file(
    base, path, value, message, suffix, tmp_path
):
    options = _mutated(base, path, value)
    file = tmp_path / f"ir-sde{suffix}"
    file.write_text(json.dumps(options) if suffix == ".json" else yaml.safe_dump(options))
    with pytest.raises(InputError) as caught:
        irsde_schedule(read_options(file))
    text = str(caught.value)
    assert text.startswith(f"{file}: ") and message in text and "\n" not in text, text


def test_the_issue_example_is_refused_on_the_command_line(files, tmp_path, capsys):
    config = tmp_path / "ir-sde.yml"
    config.write_text(yaml.safe_dump(_mutated(IRSDE_OPTIONS, "network_G.setting.nf", "64a")))
    code, err, out = _restore(files, tmp_path, capsys, config=config)
    expected = f"{config}: network_G.setting.nf must be a positive integer, got '64a'"
    _refused_in_one_line(code, err, out, expected)


def test_a_missing_sde_section_is_refused_before_the_weights_load(files, tmp_path, capsys):
    config = tmp_path / "ir-sde.yml"
    config.write_text(yaml.safe_dump(_mutated(IRSDE_OPTIONS, "sde", DELETE)))
    code, err, out = _restore(files, tmp_path, capsys, config=config, checkpoint="absent.pth")
    _refused_in_one_line(code, err, out, f"{config} has no sde section")


def test_a_setting_the_network_cannot_be_built_with_names_the_setting(files, tmp_path):
    options = _mutated(DACLIP_OPTIONS, "network_G.setting.nf", 8)  # attention needs 32·k channels
    with pytest.raises(InputError, match=r"network_G.setting .* builds no 'daclip' network"):
        read_irsde_checkpoint(files["daclip"], options)


OPTION_FILES = {
    "broken.yml": ("sde: {T: 100\n", "is not valid YAML (line 2, column 1: "),
    "list.yml": ("- sde\n- network_G\n", "must hold a mapping of sections at its top, got a list"),
    "comment.yml": ("# nothing here\n", "got nothing (the file holds no data)"),
    "twice.yml": ("network_G:\n  setting: {nf: 8, nf: 16}\n", "the key 'nf' is given twice"),
    "broken.json": ("{", "is not valid JSON (line 1, column 2: "),
    "twice.json": ('{"sde": {}, "sde": {}}', "gives the key 'sde' twice in one object"),
    "empty.yml": ("", "is empty (0 bytes)"),
    "tag.yml": ("!!python/object/apply:os.system [echo]\n", "is not valid YAML"),
}


@pytest.mark.parametrize("name", list(OPTION_FILES))
def test_an_option_file_that_does_not_parse_is_refused_in_one_line(name, files, tmp_path, capsys):
    text, message = OPTION_FILES[name]
    config = tmp_path / name
    config.write_text(text)
    code, err, out = _restore(files, tmp_path, capsys, config=config)
    _refused_in_one_line(code, err, out, f"option file {config}", message)


@pytest.mark.parametrize("kind", ["missing", "folder", "torch"])
def test_an_option_file_that_is_not_a_text_file_is_refused(kind, files, tmp_path, capsys):
    config = {"missing": tmp_path / "absent.yml", "folder": tmp_path, "torch": files["irsde"]}
    code, err, out = _restore(files, tmp_path, capsys, config=config[kind])
    said = {"missing": "does not exist", "folder": "is a folder, not a file",
            "torch": "is a torch file, not a YAML or JSON text file"}  # fmt: skip
    _refused_in_one_line(code, err, out, said[kind])


def test_the_json_equivalent_of_an_option_file_reads_the_same(files, tmp_path):
    json_file = tmp_path / "ir-sde.json"
    json_file.write_text(json.dumps(IRSDE_OPTIONS))
    assert read_options(json_file) == read_options(files["ir-sde.yml"])
    assert read_options(json_file)["setting"] == {"in_nc": 3, "out_nc": 3, "nf": 8, "depth": 2}


def test_every_constructor_argument_has_a_field_check():
    import inspect

    for arch, network in ARCHITECTURES.items():
        assert set(SETTING_CHECKS[arch]) == set(inspect.signature(network).parameters), arch


# ---- DA-CLIP contexts ----


def _daclip(files, tmp_path, capsys, *contexts: str, config=None, source=None):
    return _restore(
        files,
        tmp_path,
        capsys,
        *contexts,
        checkpoint=files["daclip"],
        config=config or files["daclip.yml"],
        source=source,
    )


@pytest.mark.parametrize(
    ("given", "missing"),
    [((), "the text context"), (("--text-context",), "the image context")],
)
def test_contexts_the_network_reads_are_required_with_command_line_advice(
    given, missing, files, tmp_path, capsys
):
    contexts = [item for flag in given for item in (flag, str(files["text"]))]
    code, err, out = _daclip(files, tmp_path, capsys, *contexts)
    flag = "--text-context" if not given else "--image-context"
    _refused_in_one_line(code, err, out, f"reads {missing}", f"pass {flag} FILE")
    assert "_context=" not in err  # no Python advice on the command line


def test_a_context_the_network_does_not_read_is_refused(files, tmp_path, capsys):
    config = tmp_path / "daclip.yml"
    options = _mutated(DACLIP_OPTIONS, "network_G.setting.use_image_context", False)
    config.write_text(yaml.safe_dump(options))
    extra = ["--text-context", str(files["text"]), "--image-context", str(files["image"])]
    code, err, out = _daclip(files, tmp_path, capsys, *extra, config=config)
    _refused_in_one_line(code, err, out, "the image context (DA-CLIP's image embedding) given")
    assert "use_image_context false" in err


def _context_file(kind: str, root: Path) -> Path:
    path = root / f"{kind}.pt"
    value: Any = {
        "narrow": torch.zeros(256),
        "rows": torch.zeros(2, 512),
        "integer": torch.zeros(512, dtype=torch.long),
        "nan": torch.full((512,), float("nan")),
        "dict": {"degra_context": torch.zeros(512)},
        "tokens": torch.zeros(1, 1, 512),
    }.get(kind)
    if value is not None:
        torch.save(value, path)
    return path


BAD_CONTEXTS = {
    "narrow": "has width 256, but the network's context_dim is 512: need [512] or [1, 512]",
    "rows": "got the shape (2, 512) (for one context per image, give a folder of files)",
    "integer": "must be a floating-point tensor, got torch.int64",
    "nan": "holds values that are not finite",
    "dict": "holds a dict with the keys degra_context; expected one tensor",
    "tokens": "must be a tensor [dim] or [1, dim], got the shape (1, 1, 512)",
    "missing": "the text context {path} does not exist",
}


@pytest.mark.parametrize("kind", list(BAD_CONTEXTS))
def test_a_bad_context_file_is_refused_before_the_run(kind, files, tmp_path, capsys):
    path = _context_file(kind, tmp_path)
    extra = ["--text-context", str(path), "--image-context", str(files["image"])]
    code, err, out = _daclip(files, tmp_path, capsys, *extra)
    _refused_in_one_line(code, err, out, BAD_CONTEXTS[kind].format(path=path))


def test_a_context_tensor_given_in_python_has_the_same_rules(files):
    with pytest.raises(InputError, match="has width 256, but the network's context_dim is 512"):
        checkpoint_network(
            files["daclip"], files["daclip.yml"], text_context=torch.zeros(256),
            image_context=files["image"],
        )  # fmt: skip


def _folder_run(files, tmp_path, names: list[str], contexts: dict[str, torch.Tensor]):
    source, folder = tmp_path / "in", tmp_path / "contexts"
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(files["lq"].read_bytes())
    for name, value in contexts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, folder / name)
    return source, ["--text-context", str(folder), "--image-context", str(files["image"])]


@pytest.mark.parametrize(
    ("contexts", "message"),
    [
        (
            {"a.pt": torch.zeros(512), "sub/b.pt": torch.zeros(256)},
            "1 per-image context file(s) refused: the text context",
        ),
        ({"a.pt": torch.zeros(512)}, "1 per-image context file(s) missing"),
    ],
)
def test_every_per_image_context_is_checked_before_any_image_is_restored(
    contexts, message, files, tmp_path, capsys
):
    source, extra = _folder_run(files, tmp_path, ["a.png", "sub/b.png"], contexts)
    code, err, out = _daclip(files, tmp_path, capsys, *extra, source=source)
    _refused_in_one_line(code, err, out, message, "b.pt")


def test_two_images_cannot_share_one_context_file(files, tmp_path):
    (tmp_path / "x.pt").write_bytes(files["text"].read_bytes())
    network = checkpoint_network(
        files["daclip"], files["daclip.yml"], text_context=tmp_path, image_context=files["image"]
    )
    network.check_contexts(["x.png"])
    with pytest.raises(InputError, match=r"images x\.jpg and x\.png would share the context"):
        network.check_contexts(["x.jpg", "x.png"])  # the library's rule (restore refuses first)


def test_a_per_image_name_must_stay_inside_the_folder(files, tmp_path):
    network = checkpoint_network(
        files["daclip"], files["daclip.yml"], text_context=tmp_path, image_context=files["image"]
    )
    assert network.context_files("sub/x.png") == {"text_context": tmp_path / "sub" / "x.pt"}
    for name in ("../x.png", "/etc/x.png", ""):
        with pytest.raises(InputError, match="must be a path relative to the input folder"):
            network.check_contexts([name])


# ---- property-based: the option-file parser and the context loader ----


def _positive(value) -> bool:
    return type(value) is int and value >= 1


FIELD_ORACLE = {
    "in_nc": _positive,
    "out_nc": _positive,
    "nf": _positive,
    "depth": _positive,
    "upscale": _positive,
    "ch_mult": lambda v: isinstance(v, list) and bool(v) and all(map(_positive, v)),
    "context_dim": lambda v: v is None or type(v) is int,
    "use_degra_context": lambda v: type(v) is bool,
    "use_image_context": lambda v: type(v) is bool,
}
"""Independent statements of which values each constructor argument accepts."""

SDE_ORACLE = {
    "max_sigma": lambda v: type(v) in (int, float) and 0 < v <= 255,
    "T": lambda v: type(v) is int and 1 <= v <= 100_000,
    "schedule": lambda v: isinstance(v, str) and v in SCHEDULES,
    "eps": lambda v: type(v) in (int, float) and 0 < v < 1,
}

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-1, 3), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
WELL_TYPED = {
    "ch_mult": st.lists(st.integers(1, 4), min_size=1, max_size=4),
    "context_dim": st.one_of(st.none(), st.integers(-1, 1024)),
    "use_degra_context": st.booleans(),
    "use_image_context": st.booleans(),
    "max_sigma": st.one_of(st.floats(0.01, 0.99), st.integers(1, 255)),
    "T": st.integers(1, 200),
    "schedule": st.sampled_from(SCHEDULES),
    "eps": st.floats(0.001, 0.5),
}


def _field_value(name: str, clean: bool):
    well_typed = WELL_TYPED.get(name, st.integers(1, 64))
    return well_typed if clean else st.one_of(well_typed, well_typed, ANYTHING)


@st.composite
def option_dicts(draw):
    """An original-layout option mapping: in a clean draw every field well-typed (optional ones
    sometimes absent); otherwise each field well-typed, ill-typed, absent or extra."""
    clean = draw(st.booleans())
    arch = draw(st.sampled_from(sorted(SETTING_CHECKS)))
    required = ("in_nc", "out_nc", "nf")
    setting = {
        name: draw(_field_value(name, clean))
        for name in SETTING_CHECKS[arch]
        if name != "upscale" and ((clean and name in required) or draw(st.integers(0, 9)))
    }
    if not clean and draw(st.integers(0, 9)) == 0:
        setting["width"] = 2
    sde = {
        name: draw(_field_value(name, clean))
        for name in SDE_ORACLE
        if clean or draw(st.integers(0, 9))
    }
    if not clean:
        sde = draw(st.one_of(st.just(sde), st.just(sde), ANYTHING))
    options = {"network_G": {"which_model_G": "ConditionalUNet", "setting": setting}}
    if sde is not None:
        options["sde"] = sde
    return arch, options


@settings(max_examples=300, deadline=None)
@given(option_dicts())
def test_the_option_parser_returns_the_options_or_names_a_wrong_field(drawn):
    _, options = drawn
    setting, sde = options["network_G"]["setting"], options.get("sde")
    inferred = "daclip" if {"ch_mult", "context_dim"} & set(setting) or any(
        name.startswith("use_") for name in setting
    ) else "irsde"  # fmt: skip
    checks = SETTING_CHECKS[inferred]
    wrong = [
        f"network_G.setting.{n}"
        for n, v in setting.items()
        if n in checks and not FIELD_ORACLE[n](v)
    ]
    wrong += [name for name in setting if name not in checks]
    wrong += [name for name in ("in_nc", "out_nc", "nf") if name not in setting]
    if isinstance(sde, dict):
        wrong += [f"sde.{n}" for n in SDE_ORACLE if n in sde and not SDE_ORACLE[n](sde[n])]
        wrong += [n for n in SDE_ORACLE if n not in sde]
    elif sde is not None:
        wrong.append("sde")
    try:
        parsed = parse_options(options)
    except InputError as error:
        event("refused")
        assert wrong, f"refused well-formed options: {error}"
        assert any(name in str(error) for name in wrong), (wrong, str(error))
        return
    event("parsed")
    assert not wrong, f"accepted {wrong}"
    assert parsed["arch"] == inferred and parsed["setting"] == setting
    if sde is not None:
        schedule = irsde_schedule(parsed)
        expected = sde["max_sigma"] / 255 if sde["max_sigma"] >= 1 else sde["max_sigma"]
        assert schedule.max_sigma == pytest.approx(expected) and sde["T"] == schedule.T


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       st.sampled_from([".yml", ".json"]))  # fmt: skip
def test_any_bytes_as_an_option_file_give_a_mapping_or_one_line(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"options{suffix}"
        path.write_bytes(data)
        try:
            content = read_mapping_file(path)
        except InputError as error:
            assert "\n" not in str(error) and str(path) in str(error)
        else:
            assert isinstance(content, dict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x89PNG", b"{"]),
    st.binary(max_size=200),
)
def test_any_bytes_as_a_torch_file_give_its_content_or_one_line(prefix, data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pth"
        path.write_bytes(prefix + data)
        try:
            load_torch_file(path)
        except InputError as error:
            assert "\n" not in str(error) and str(path) in str(error)


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool,
          torch.complex64]  # fmt: skip


@st.composite
def contexts(draw):
    """(value saved, the width asked for): tensors of any rank, size, dtype, with NaNs or not;
    sometimes not a tensor at all."""
    width = draw(st.integers(1, 4))
    if draw(st.booleans()):  # a well-formed row, or a close miss
        shape = draw(st.sampled_from([[width], [1, width], [2, width], [width + 1]]))
    else:
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        if shape and draw(st.booleans()):
            shape[-1] = width
    dtype = draw(st.sampled_from(DTYPES))
    value = torch.ones(shape, dtype=dtype)
    if value.is_floating_point() and value.numel() and draw(st.integers(0, 3)) == 0:
        value.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), -2.5]))
    wrapped = draw(st.sampled_from(["tensor", "tensor", "tensor", "dict", "list"]))
    saved = {"tensor": value, "dict": {"context": value}, "list": [value]}[wrapped]
    return saved, width


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contexts())
def test_the_context_loader_accepts_exactly_finite_float_rows_of_the_width(drawn):
    saved, width = drawn
    ok = (
        isinstance(saved, torch.Tensor)
        and saved.is_floating_point()
        and saved.ndim in (1, 2)
        and (saved.ndim == 1 or saved.shape[0] == 1)
        and saved.shape[-1] == width
        and saved.numel() > 0
        and bool(torch.isfinite(saved).all())
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "context.pt"
        torch.save(saved, path)
        try:
            loaded = load_context(path, "text_context", width, one_row=True)
        except InputError as error:
            event("refused")
            assert not ok, f"refused a good context: {error}"
            assert str(error).startswith(f"the text context {path}") and "\n" not in str(error)
        else:
            event("loaded")
            assert ok, f"accepted {saved!r} for width {width}"
            assert torch.equal(loaded, saved)
