"""ConditionalUNet: shapes, size, conditioning on t and μ, determinism, errors, gradients."""

import pytest
import torch

from mrs_numerics.models import ConditionalUNet

SMALL = {"base_channels": 8, "channel_mults": (1, 2, 2), "time_embedding_dim": 16}


def _inputs(batch=2, height=32, width=32, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, height, width, generator=generator, dtype=dtype)
    mu = torch.randn(batch, 3, height, width, generator=generator, dtype=dtype)
    return x, mu


@pytest.fixture(scope="module")
def model():
    return ConditionalUNet.random_init_for_benchmarks(0)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 64), (16, 40)])
def test_output_shape_equals_input_shape(model, height, width):
    x, mu = _inputs(height=height, width=width)
    with torch.no_grad():
        assert model(x, torch.rand(2), mu).shape == x.shape


def test_default_model_output_shape_with_attention():
    x, mu = _inputs(height=16, width=24)
    with torch.no_grad():
        assert ConditionalUNet(attention=True)(x, torch.rand(2), mu).shape == x.shape


@pytest.mark.parametrize("attention", [False, True])
def test_default_config_has_about_one_million_parameters(attention):
    count = sum(p.numel() for p in ConditionalUNet(attention=attention).parameters())
    assert 500_000 <= count <= 1_500_000


def test_zero_initialised_output_predicts_zero():
    x, mu = _inputs()
    with torch.no_grad():
        assert torch.count_nonzero(ConditionalUNet(**SMALL)(x, torch.rand(2), mu)) == 0


def test_output_depends_on_time(model):
    x, mu = _inputs()
    with torch.no_grad():
        first = model(x, torch.full((2,), 0.2), mu)
        second = model(x, torch.full((2,), 0.7), mu)
    assert (first - second).abs().max() > 1e-4


def test_output_depends_on_condition(model):
    x, mu = _inputs()
    with torch.no_grad():
        first = model(x, torch.full((2,), 0.5), mu)
        second = model(x, torch.full((2,), 0.5), mu + 0.1)
    assert (first - second).abs().max() > 1e-4


def test_scalar_time_broadcasts_to_batch(model):
    x, mu = _inputs()
    with torch.no_grad():
        expected = model(x, torch.full((2,), 0.3), mu)
        for t in (0.3, torch.tensor(0.3), torch.tensor([0.3])):
            torch.testing.assert_close(model(x, t, mu), expected)


def test_max_time_makes_index_time_match_unit_time():
    x, mu = _inputs()
    unit = ConditionalUNet.random_init_for_benchmarks(1, **SMALL, max_time=1.0)
    index = ConditionalUNet.random_init_for_benchmarks(1, **SMALL, max_time=100.0)
    with torch.no_grad():
        torch.testing.assert_close(index(x, torch.full((2,), 37.0), mu), unit(x, 0.37, mu))


def test_integer_time_indices_are_accepted(model):
    x, mu = _inputs()
    with torch.no_grad():
        assert model(x, torch.tensor([3, 50]), mu).shape == x.shape


def test_seeded_initialisation_is_deterministic_and_leaves_global_rng_alone():
    x, mu = _inputs()
    state = torch.random.get_rng_state()
    first = ConditionalUNet.random_init_for_benchmarks(7, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = ConditionalUNet.random_init_for_benchmarks(7, **SMALL)
    other = ConditionalUNet.random_init_for_benchmarks(8, **SMALL)
    with torch.no_grad():
        assert torch.equal(first(x, 0.5, mu), second(x, 0.5, mu))
        assert not torch.equal(first(x, 0.5, mu), other(x, 0.5, mu))


def test_size_not_a_multiple_raises_with_the_required_multiple(model):
    assert model.required_multiple == 4
    x, mu = _inputs(height=30, width=32)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(x, 0.5, mu)


def test_bad_time_shape_raises(model):
    x, mu = _inputs()
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.rand(3), mu)


def test_condition_shape_mismatch_raises(model):
    x, mu = _inputs()
    with pytest.raises(ValueError, match="mu"):
        model(x, 0.5, mu[:, :, :16])


@pytest.mark.parametrize("attention", [False, True])
def test_gradients_reach_every_parameter(attention):
    net = ConditionalUNet.random_init_for_benchmarks(0, **SMALL, attention=attention)
    x, mu = _inputs(height=16, width=16)
    net(x, torch.rand(2), mu).square().mean().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def test_float64_model_runs_in_float64_and_agrees_with_float32():
    net = ConditionalUNet.random_init_for_benchmarks(0, **SMALL, attention=True)
    x, mu = _inputs()
    with torch.no_grad():
        single = net(x, 0.5, mu)
        double = net.double()(x.double(), 0.5, mu.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, rtol=1e-4, atol=1e-5)
