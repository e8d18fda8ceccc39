"""Prediction conversions: proved on the MR marginal, and the generated code round-trips."""

import pytest
import torch

from derivations import parameterization
from mrs_numerics._generated import parameterization_numpy, parameterization_torch


@pytest.mark.parametrize("prediction", parameterization.PREDICTIONS)
def test_conversion_to_noise_recovers_the_true_noise(prediction):
    assert parameterization.check_to_noise(prediction) == 0


@pytest.mark.parametrize("prediction", parameterization.PREDICTIONS)
def test_conversion_to_data_recovers_the_clean_data(prediction):
    assert parameterization.check_to_data(prediction) == 0


def test_generated_conversions_recover_x0_and_eps_on_sampled_marginals():
    torch.manual_seed(0)
    max_sigma = 50 / 255
    alpha = torch.rand(8, 1, dtype=torch.float64) * 0.98 + 0.01
    sigma = max_sigma * torch.sqrt(1 - alpha**2)
    x0, eps, mu = (torch.randn(8, 3, dtype=torch.float64) for _ in range(3))
    x = mu + alpha * (x0 - mu) + sigma * eps
    targets = {
        "noise": eps,
        "data": x0,
        "velocity": max_sigma * alpha * eps - sigma / max_sigma * (x0 - mu),
        "score": -eps / sigma,
    }
    for name in parameterization.CONVERSIONS:
        target, source = name.split("_from_")
        converted = getattr(parameterization_torch, name)(
            x, mu, targets[source], alpha, sigma, max_sigma
        )
        expected = x0 if target == "data" else eps
        torch.testing.assert_close(converted, expected, rtol=1e-12, atol=1e-12)
        numpy_args = (t.numpy() for t in (x, mu, targets[source], alpha, sigma))
        converted_np = getattr(parameterization_numpy, name)(*numpy_args, max_sigma)
        torch.testing.assert_close(torch.from_numpy(converted_np), expected, rtol=1e-12, atol=1e-12)


def test_unknown_prediction_is_rejected():
    with pytest.raises(ValueError, match="unknown prediction 'epsilon'; allowed: noise, data"):
        parameterization.noise_from("epsilon")
