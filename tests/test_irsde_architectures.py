"""IR-SDE's and DA-CLIP's UNets: the original's function and keys, loading, the model wrapper.

The fixtures (``tests/fixtures/irsde/``, see its README) hold small networks' weights, inputs
and outputs computed by the original repositories' code, and the state-dict keys and shapes of
the published full-size configurations.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from mrs_numerics.models.checkpoints import (
    ARCHITECTURES,
    extract_state_dict,
    irsde_schedule,
    load_irsde_checkpoint,
    parse_options,
    read_options,
)
from mrs_numerics.models.daclip_attention import CrossAttention, SpatialTransformer
from mrs_numerics.models.daclip_unet import DACLIPConditionalUNet
from mrs_numerics.models.irsde_blocks import sinusoidal_time_embedding
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet
from mrs_numerics.restoration import restore
from mrs_numerics.solvers.adapters import IRSDEAdapter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "irsde"
TOLERANCE = 1e-5
"""Largest accepted |ours − original| in float32."""


def _load(name: str) -> dict:
    return torch.load(FIXTURES / name, weights_only=True)


@pytest.fixture(scope="module")
def irsde_fixture() -> dict:
    return _load("irsde_conditional_unet_small.pt")


@pytest.fixture(scope="module")
def daclip_fixture() -> dict:
    return _load("daclip_conditional_unet_small.pt")


@pytest.fixture(scope="module")
def transformer_fixture(daclip_fixture) -> dict:
    """The DA-CLIP fixture with random (not zero) spatial-transformer output convolutions."""
    extra = _load("daclip_conditional_unet_small_transformer.pt")
    state = {**daclip_fixture["state_dict"], **extra["replaced"]}
    return {**extra, "state_dict": state}


def _network(fixture: dict, arch: str) -> torch.nn.Module:
    network = ARCHITECTURES[arch](**fixture["config"])
    result = network.load_state_dict(fixture["state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return network.eval()


def _max_error(network: torch.nn.Module, fixture: dict, **changes) -> float:
    with torch.no_grad():
        output = network(**{**fixture["inputs"], **changes})
    assert output.shape == fixture["output"].shape
    return (output - fixture["output"]).abs().max().item()


# ---- (a) the small networks reproduce the original code's outputs ----


def test_irsde_network_reproduces_the_original(irsde_fixture):
    network = _network(irsde_fixture, "irsde")
    assert isinstance(network, IRSDEConditionalUNet)
    assert _max_error(network, irsde_fixture) <= TOLERANCE


def test_daclip_network_reproduces_the_original(daclip_fixture):
    network = _network(daclip_fixture, "daclip")
    assert isinstance(network, DACLIPConditionalUNet)
    assert _max_error(network, daclip_fixture) <= TOLERANCE
    # the degradation context matters: without it the output is another one
    assert _max_error(network, daclip_fixture, text_context=None) > 100 * TOLERANCE


def test_daclip_spatial_transformers_reproduce_the_original(transformer_fixture):
    network = _network(transformer_fixture, "daclip")
    assert _max_error(network, transformer_fixture) <= TOLERANCE
    flipped = transformer_fixture["inputs"]["image_context"].flip(0)
    assert _max_error(network, transformer_fixture, image_context=flipped) > 10 * TOLERANCE


def test_fixture_sizes_exercise_the_padding(daclip_fixture):
    height, width = daclip_fixture["inputs"]["xt"].shape[-2:]
    network = DACLIPConditionalUNet(**daclip_fixture["config"])
    assert height % network.pad_multiple and width % network.pad_multiple


def test_integer_and_float_times_give_the_same_embedding():
    integer = sinusoidal_time_embedding(torch.tensor([37, 81]), 8)
    floating = sinusoidal_time_embedding(torch.tensor([37.0, 81.0]), 8)
    assert integer.dtype == torch.float32
    assert torch.equal(integer, floating)
    # the last frequency is exactly 1/10000 (the original's half − 1)
    assert sinusoidal_time_embedding(torch.tensor([1e4]), 8)[0, 3].item() == pytest.approx(
        torch.sin(torch.tensor(1.0)).item(), abs=1e-6
    )


def test_network_accepts_a_number_as_time(irsde_fixture):
    network = _network(irsde_fixture, "irsde")
    inputs = irsde_fixture["inputs"]
    with torch.no_grad():
        single = network(inputs["xt"][:1], inputs["cond"][:1], 37)
    assert (single - irsde_fixture["output"][:1]).abs().max().item() <= TOLERANCE


def test_network_crops_back_sizes_too_small_to_reflect(irsde_fixture):
    network = _network(irsde_fixture, "irsde")
    x = torch.rand(1, 3, 3, 5)
    with torch.no_grad():
        assert network(x, x, torch.tensor([5])).shape == x.shape


def test_cross_attention_on_one_token_returns_its_value():
    """With one context token the softmax is 1: every query gets to_out(to_v(c))."""
    torch.manual_seed(0)
    attention = CrossAttention(32, context_dim=16, heads=2, dim_head=8)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 1, 16)
    with torch.no_grad():
        out = attention(x, context)
        expected = attention.to_out(attention.to_v(context)).expand(-1, 5, -1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_spatial_transformer_starts_as_the_identity():
    transformer = SpatialTransformer(32, 1, 32, context_dim=16)
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        assert torch.equal(transformer(x, torch.randn(1, 1, 16)), x)


# ---- (b) the published full-size configurations have the published keys and shapes ----


@pytest.mark.parametrize(
    ("name", "arch"),
    [("irsde_deblurring_nf64_depth4", "irsde"), ("daclip_universal_nf64", "daclip")],
)
def test_full_size_configurations_have_the_published_keys(name, arch):
    published = json.loads((FIXTURES / "full_size_state_dict_keys.json").read_text())[name]
    with torch.device("meta"):
        network = ARCHITECTURES[arch](**published["config"])
    ours = {key: list(value.shape) for key, value in network.state_dict().items()}
    assert set(ours) == set(published["keys"])
    assert all(ours[key] == published["keys"][key] for key in ours)


# ---- (c) loading checkpoints ----

IRSDE_YAML = (FIXTURES / "irsde-options.yml").read_text()

DACLIP_YAML = (FIXTURES / "daclip-options.yml").read_text()


def _save(path: Path, content) -> Path:
    torch.save(content, path)
    return path


def test_checkpoint_loads_bare_wrapped_and_prefixed(tmp_path, irsde_fixture):
    state = irsde_fixture["state_dict"]
    config = {"arch": "irsde", **irsde_fixture["config"]}
    prefixed = {f"module.{key}": value for key, value in state.items()}
    variants = {
        "bare": state,
        "params": {"params": state},
        "state_dict": {"state_dict": prefixed, "epoch": 3},
        "module": prefixed,
    }
    for name, content in variants.items():
        network = load_irsde_checkpoint(_save(tmp_path / f"{name}.pth", content), config)
        assert not network.training
        assert _max_error(network, irsde_fixture) <= TOLERANCE, name


def test_checkpoint_loads_with_option_yaml_and_json(tmp_path, irsde_fixture, daclip_fixture):
    for fixture, text in ((irsde_fixture, IRSDE_YAML), (daclip_fixture, DACLIP_YAML)):
        weights = _save(tmp_path / "weights.pth", fixture["state_dict"])
        yaml_file = tmp_path / "options.yml"
        yaml_file.write_text(text)
        json_file = tmp_path / "options.json"
        json_file.write_text(json.dumps(yaml.safe_load(text)))
        flat_json = tmp_path / "flat.json"
        arch = "daclip" if "ch_mult" in fixture["config"] else "irsde"
        flat_json.write_text(json.dumps({"arch": arch, **fixture["config"]}))
        for config in (yaml_file, json_file, str(flat_json), read_options(yaml_file)):
            network = load_irsde_checkpoint(weights, config)
            assert isinstance(network, ARCHITECTURES[arch])
            assert _max_error(network, fixture) <= TOLERANCE


def test_read_options_infers_the_architecture(tmp_path):
    path = tmp_path / "test.yml"
    path.write_text(DACLIP_YAML)
    options = read_options(path)
    assert options["arch"] == "daclip"
    assert options["setting"]["ch_mult"] == [1, 1, 1, 1]
    assert options["sde"]["max_sigma"] == 50
    path.write_text(IRSDE_YAML)
    assert read_options(path)["arch"] == "irsde"
    assert read_options(path)["setting"] == {"in_nc": 3, "out_nc": 3, "nf": 8, "depth": 2}


def test_wrong_architecture_names_the_keys_and_the_arch(tmp_path, daclip_fixture):
    weights = _save(tmp_path / "daclip.pth", daclip_fixture["state_dict"])
    config = {"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 32, "depth": 1}
    with pytest.raises(ValueError, match=r"'irsde'.*unexpected keys \(prompt"):
        load_irsde_checkpoint(weights, config)


def test_missing_key_is_named(tmp_path, irsde_fixture):
    state = dict(irsde_fixture["state_dict"])
    del state["final_conv.bias"]
    weights = _save(tmp_path / "partial.pth", state)
    with pytest.raises(ValueError, match=r"1 missing keys \(final_conv\.bias\)"):
        load_irsde_checkpoint(weights, {"arch": "irsde", **irsde_fixture["config"]})


def test_other_widths_are_named_as_shape_mismatches(tmp_path, irsde_fixture):
    weights = _save(tmp_path / "nf8.pth", irsde_fixture["state_dict"])
    config = {"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 16, "depth": 2}
    with pytest.raises(ValueError, match=r"shape mismatches.*init_conv\.weight \(8, 6, 7, 7\)"):
        load_irsde_checkpoint(weights, config)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "nafnet", "in_nc": 3}, "unknown arch 'nafnet'"),
        ({"arch": "irsde", "in_nc": 3, "out_nc": 3}, "needs the constructor arguments nf"),
        ({"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 8, "width": 2}, "unknown .* width"),
        ({"network_G": {"which_model_G": "ConditionalNAFNet", "setting": {}}}, "not supported"),
        ({"network_G": {"which_model_G": "ConditionalUNet"}}, "no 'setting'"),
    ],
)
def test_bad_configurations_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        parse_options(options)


def test_a_file_without_a_state_dict_is_refused(tmp_path):
    weights = _save(tmp_path / "empty.pth", {"epoch": 1, "optimizer": {"lr": 0.1}})
    with pytest.raises(ValueError, match="no state dict"):
        load_irsde_checkpoint(weights, {"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 8})
    with pytest.raises(ValueError, match="no state dict"):
        extract_state_dict({"params": {"a": 1}})


# ---- (d) the wrapper model(x, t, mu) ----


class Spy(torch.nn.Module):
    """Records what the wrapper passes and returns zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def forward(self, xt, cond, time, **context):
        self.calls.append((xt, cond, time, context))
        return torch.zeros_like(xt)


def test_wrapper_passes_unrounded_or_rounded_times():
    x, mu = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    t = torch.tensor([37.4, 80.6], dtype=torch.float64)
    spy = Spy()
    IRSDEAdapter(spy)(x, t, mu)
    xt, cond, time, context = spy.calls[-1]
    assert xt is x and cond is mu and context == {}
    assert time.dtype == torch.float32 and time.shape == (2,)
    assert torch.allclose(time, t.float())
    with pytest.warns(UserWarning, match="rounds fractional times") as caught:
        IRSDEAdapter(spy, round_time=True)(x, t, mu)
    assert caught[0].filename == __file__  # attributed to the caller, past nn.Module's frames
    time = spy.calls[-1][2]
    assert time.dtype == torch.long and time.tolist() == [37, 81]
    IRSDEAdapter(spy)(x, 12.5, mu)
    assert spy.calls[-1][2].tolist() == [12.5, 12.5]


def test_wrapper_broadcasts_the_contexts():
    spy = Spy()
    text = torch.randn(1, 512, dtype=torch.float64)
    image = torch.randn(512)
    model = IRSDEAdapter(spy, text_context=text, image_context=image)
    x = torch.rand(3, 3, 4, 4)
    model(x, torch.full((3,), 5.0, dtype=torch.float64), x)
    context = spy.calls[-1][3]
    assert set(context) == {"text_context", "image_context"}
    assert context["text_context"].shape == (3, 512)
    assert context["text_context"].dtype == torch.float32
    assert torch.equal(context["text_context"][2], text[0].float())
    assert torch.equal(context["image_context"][1], image)
    with pytest.raises(ValueError, match="2 rows"):
        IRSDEAdapter(spy, text_context=torch.randn(2, 512))(x, 5.0, x)


def test_wrapper_on_the_real_network_matches_integer_times(daclip_fixture):
    inputs = daclip_fixture["inputs"]
    model = IRSDEAdapter(
        _network(daclip_fixture, "daclip"),
        text_context=inputs["text_context"],
        image_context=inputs["image_context"],
    )
    assert model.required_multiple == 1 and model.channels == 3
    with torch.no_grad():
        out = model(inputs["xt"], inputs["time"].double(), inputs["cond"])
    assert (out - daclip_fixture["output"]).abs().max().item() <= TOLERANCE


def test_wrapped_network_restores_an_image(irsde_fixture):
    options = parse_options(yaml.safe_load(IRSDE_YAML))
    model = IRSDEAdapter(_network(irsde_fixture, "irsde"))
    images = irsde_fixture["inputs"]["cond"].clamp(0, 1)
    with warnings.catch_warnings():  # the random network's run may diverge: not the point here
        warnings.simplefilter("ignore", RuntimeWarning)
        restored = restore(
            images, model, "noise", irsde_schedule(options), nfe=2, allow_divergence=True
        )
    assert restored.shape == images.shape
    assert torch.isfinite(restored).all()


# ---- (e) the training schedule ----


def test_schedule_of_the_options_starts_at_the_clean_image(tmp_path):
    path = tmp_path / "options.yml"
    path.write_text(DACLIP_YAML)
    for options in (
        path,
        read_options(path),
        {"max_sigma": 50 / 255, "T": 100, "schedule": "cosine", "eps": 0.005},
    ):
        schedule = irsde_schedule(options)
        assert schedule.max_sigma == pytest.approx(50 / 255, rel=1e-12)
        assert schedule.T == 100 and schedule.t_max == 100.0
        assert float(schedule.alpha(0.0)) == pytest.approx(1.0, abs=1e-12)
        assert float(schedule.sigma(0.0)) == pytest.approx(0.0, abs=1e-12)
        assert float(schedule.alpha(100.0)) == pytest.approx(0.005, rel=1e-9)


@pytest.mark.parametrize(
    ("sde", "message"),
    [
        ({"max_sigma": 50, "T": 100, "schedule": "cosine"}, "lacks eps"),
        ({"max_sigma": -1, "T": 100, "schedule": "cosine", "eps": 0.005}, "max_sigma"),
        ({"max_sigma": 50, "T": 100, "schedule": "sigmoid", "eps": 0.005}, "schedule"),
        ({"max_sigma": 50, "T": 100.5, "schedule": "cosine", "eps": 0.005}, "sde.T"),
        ({"max_sigma": 50, "T": 100, "schedule": "cosine", "eps": 2}, "eps"),
    ],
)
def test_bad_sde_sections_are_refused(sde, message):
    with pytest.raises(ValueError, match=message):
        irsde_schedule({"sde": sde})
    with pytest.raises(ValueError, match="no 'sde' section"):
        irsde_schedule({"arch": "irsde"})
