"""Exact Gaussian-mixture MR oracles: score, x̂₀, ε̂, v̂ and the single-Gaussian flow map."""

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import parameterization
from mrs_numerics.verification import oracles
from mrs_numerics.verification.oracles import GaussianData

F64 = torch.float64
SCHEDULES = {"cosine": schedules.cosine(), "constant": schedules.constant()}
PROBLEMS = sorted(oracles.builtin_problems())
TIMES = torch.tensor([0.0, 1e-6, 1e-3, 0.1, 0.4, 0.8, 1.0 - 1e-6, 1.0], dtype=F64)
"""One time per sample: both ends (σ = 0 at t = 0, α = eps at t = 1) and the interior."""


def _states(oracle, times=TIMES, seed=0):
    """Per-sample μ and x: marginal draws for half of the batch, far-out points for the rest."""
    gen = torch.Generator().manual_seed(seed)
    n = times.numel()
    mu = torch.randn(n, oracle.dim, generator=gen, dtype=F64)
    x = oracle.sample_marginal(mu, times, gen)
    far = mu + 2.0 * torch.randn(n, oracle.dim, generator=gen, dtype=F64)
    return torch.cat([x, far]), times.repeat(2), mu.repeat(2, 1)


def _oracle(name, schedule_name):
    return oracles.builtin_problem(name, SCHEDULES[schedule_name])


def _ab(schedule, t):
    return schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]


def _assert_relative(actual, expected, rtol):
    scale = expected.abs().max().clamp_min(1e-300)
    assert float((actual - expected).abs().max() / scale) <= rtol


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("name", PROBLEMS)
def test_score_is_the_gradient_of_the_log_density(name, schedule_name):
    oracle = _oracle(name, schedule_name)
    x, t, mu = _states(oracle)
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(oracle.log_density(x, t, mu).sum(), x)
    score = oracle.score(x.detach(), t, mu)
    for row in range(x.shape[0]):
        _assert_relative(score[row], grad[row], 1e-9)


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("name", PROBLEMS)
def test_noise_is_minus_sigma_score_and_the_data_form(name, schedule_name):
    oracle = _oracle(name, schedule_name)
    x, t, mu = _states(oracle)
    alpha, sigma = _ab(oracle.schedule, t)
    noise = oracle.noise(x, t, mu)
    torch.testing.assert_close(noise, -sigma * oracle.score(x, t, mu), rtol=1e-14, atol=0)
    interior = sigma[:, 0] > 1e-3
    from_data = (x - mu - alpha * (oracle.data(x, t, mu) - mu)) / sigma
    torch.testing.assert_close(noise[interior], from_data[interior], rtol=0, atol=1e-10)


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("name", PROBLEMS)
def test_data_prediction_satisfies_tweedie(name, schedule_name):
    oracle = _oracle(name, schedule_name)
    x, t, mu = _states(oracle)
    alpha, sigma = _ab(oracle.schedule, t)
    tweedie = mu + (x - mu + sigma**2 * oracle.score(x, t, mu)) / alpha
    torch.testing.assert_close(oracle.data(x, t, mu), tweedie, rtol=0, atol=1e-10)


@pytest.mark.parametrize("source", ["noise", "velocity", "score"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_conversions_to_data_reproduce_the_data_prediction(name, source):
    oracle = _oracle(name, "cosine")
    x, t, mu = _states(oracle)
    keep = oracle.schedule.sigma(t) > 0
    x, t, mu = x[keep], t[keep], mu[keep]
    alpha, sigma = _ab(oracle.schedule, t)
    out = oracle.predict(x, t, mu, source)
    data = parameterization.convert(out, source, "data", x, mu, alpha, sigma, oracle.max_sigma)
    torch.testing.assert_close(data, oracle.data(x, t, mu), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", PROBLEMS)
def test_velocity_is_the_lambda_normalised_rotation(name):
    """v̂ = Λαε̂ − (σ/Λ)(x̂₀ − μ), and (α, σ/Λ) rotates (x̂₀ − μ, Λε̂) into (x − μ, v̂)."""
    oracle = _oracle(name, "cosine")
    x, t, mu = _states(oracle)
    alpha, sigma = _ab(oracle.schedule, t)
    big = oracle.max_sigma
    data, noise, velocity = (oracle.predict(x, t, mu, p) for p in ("data", "noise", "velocity"))
    expected = big * alpha * noise - (sigma / big) * (data - mu)
    torch.testing.assert_close(velocity, expected, rtol=0, atol=1e-13)
    rotated = alpha * (data - mu) + (sigma / big) * (big * noise)
    torch.testing.assert_close(rotated, x - mu, rtol=0, atol=1e-12)


def test_single_gaussian_matches_the_independent_gaussian_problem():
    schedule = SCHEDULES["constant"]
    random = GaussianData.random(schedule, batch=5, dim=3)
    delta = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    problem = GaussianData(schedule, random.mu, delta, torch.tensor(0.25, dtype=F64))
    oracle = oracles.single_gaussian(schedule, delta, torch.full((3,), 0.25, dtype=F64))
    t = torch.tensor([0.05, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    x = problem.marginal_sample(0.5)
    torch.testing.assert_close(
        oracle.data(x, t, problem.mu), problem.data(x, t, problem.mu), rtol=0, atol=1e-13
    )


def test_diagonal_and_full_covariances_agree():
    diagonal = oracles.builtin_problem("gmm-2d-diag")
    full = oracles.GaussianMixtureOracle(
        diagonal.schedule,
        diagonal.weights,
        diagonal.offsets,
        torch.diag_embed(diagonal.covariances),
    )
    x, t, mu = _states(diagonal)
    for prediction in parameterization.MODEL_PREDICTIONS:
        torch.testing.assert_close(
            full.predict(x, t, mu, prediction),
            diagonal.predict(x, t, mu, prediction),
            rtol=1e-13,
            atol=1e-13,
        )


def test_outputs_come_back_in_the_input_dtype_and_model_counts_calls():
    oracle = oracles.builtin_problem("gmm-3d-full")
    x, t, mu = _states(oracle)
    model = oracle.model("velocity")
    out = model(x.float(), t, mu.float())
    assert out.dtype == torch.float32
    assert model.calls == 1
    torch.testing.assert_close(out, oracle.velocity(x, t, mu).float(), rtol=1e-5, atol=1e-5)
    assert oracle.log_density(x.float(), t, mu).dtype == torch.float32


def test_responsibilities_are_stable_far_from_every_component():
    oracle = oracles.builtin_problem("gmm-2d-diag")
    mu = torch.zeros(2, 2, dtype=F64)
    x = torch.tensor([[40.0, -30.0], [-25.0, 35.0]], dtype=F64)
    t = torch.tensor([0.0, 1e-4], dtype=F64)
    for prediction in parameterization.MODEL_PREDICTIONS:
        assert torch.isfinite(oracle.predict(x, t, mu, prediction)).all()
    assert torch.isfinite(oracle.log_density(x, t, mu)).all()


def _single(name):
    """A K = 1 oracle and its (offset, covariance): 1-d, and 3-d with a full covariance."""
    schedule = SCHEDULES["cosine"]
    if name == "gauss-1d":
        oracle = oracles.builtin_problem(name, schedule)
    else:
        cov = torch.tensor(oracles.GMM_3D_FULL_COVARIANCES[0], dtype=F64)
        oracle = oracles.single_gaussian(schedule, [0.4, -0.2, 0.1], cov)
    return oracle, oracle.offsets[0], oracle.covariances[0]


@pytest.mark.parametrize("name", ["gauss-1d", "gauss-3d-full"])
def test_gaussian_flow_solves_the_pf_ode(name):
    """Central difference of the flow in t_e vs θ(μ − x) + ½ g² ε̂/σ at the flowed state."""
    oracle, offset, cov = _single(name)
    schedule = oracle.schedule
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(6, oracle.dim, generator=gen, dtype=F64)
    t_s = torch.full((6,), 0.9, dtype=F64)
    x_s = oracle.sample_marginal(mu, t_s, gen)
    t_e = torch.tensor([0.05, 0.2, 0.35, 0.5, 0.7, 0.85], dtype=F64)
    h = 1e-5
    x_e = oracles.gaussian_flow(schedule, x_s, t_s, t_e, mu, offset, cov)
    plus = oracles.gaussian_flow(schedule, x_s, t_s, t_e + h, mu, offset, cov)
    minus = oracles.gaussian_flow(schedule, x_s, t_s, t_e - h, mu, offset, cov)
    derivative = (plus - minus) / (2 * h)
    theta, g = schedule.theta(t_e)[:, None], schedule.g(t_e)[:, None]
    sigma = schedule.sigma(t_e)[:, None]
    drift = theta * (mu - x_e) + 0.5 * g**2 * oracle.noise(x_e, t_e, mu) / sigma
    torch.testing.assert_close(derivative, drift, rtol=0, atol=1e-7 * float(drift.abs().max()))


@pytest.mark.parametrize("name", ["gauss-1d", "gauss-3d-full"])
def test_gaussian_flow_composes(name):
    oracle, offset, cov = _single(name)
    schedule = oracle.schedule
    gen = torch.Generator().manual_seed(2)
    mu = torch.randn(4, oracle.dim, generator=gen, dtype=F64)
    x_s = oracle.sample_marginal(mu, 0.95, gen)
    middle = oracles.gaussian_flow(schedule, x_s, 0.95, 0.4, mu, offset, cov)
    two_legs = oracles.gaussian_flow(schedule, middle, 0.4, 0.02, mu, offset, cov)
    direct = oracles.gaussian_flow(schedule, x_s, 0.95, 0.02, mu, offset, cov)
    torch.testing.assert_close(two_legs, direct, rtol=0, atol=1e-13)
    back = oracles.gaussian_flow(schedule, direct, 0.02, 0.95, mu, offset, cov)
    torch.testing.assert_close(back, x_s, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", PROBLEMS)
def test_sample_marginal_has_the_mixture_mean_and_covariance(name):
    oracle = _oracle(name, "cosine")
    n, t = 200_000, 0.3
    mu = torch.linspace(-0.5, 0.5, oracle.dim, dtype=F64).expand(n, oracle.dim)
    x = oracle.sample_marginal(mu, t, torch.Generator().manual_seed(7))
    alpha, sigma = (
        float(f(torch.tensor(t, dtype=F64))) for f in (oracle.schedule.alpha, oracle.schedule.sigma)
    )
    w = oracle.weights
    cov_k = oracle.covariances if oracle.full else torch.diag_embed(oracle.covariances)
    means = mu[0] + alpha * oracle.offsets
    mean = (w[:, None] * means).sum(0)
    centred = means - mean
    eye = torch.eye(oracle.dim, dtype=F64)
    cov = (w[:, None, None] * (alpha**2 * cov_k + sigma**2 * eye)).sum(0)
    cov = cov + (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)
    scale = float(torch.linalg.eigvalsh(cov).max())
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=5 * (scale / n) ** 0.5)
    torch.testing.assert_close(torch.cov(x.T).reshape(cov.shape), cov, rtol=0, atol=0.02 * scale)


def test_bad_parameters_and_names_are_rejected():
    schedule = SCHEDULES["cosine"]
    with pytest.raises(ValueError, match="weights must have shape"):
        oracles.GaussianMixtureOracle(schedule, [1.0], [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="positive definite"):
        oracles.GaussianMixtureOracle(schedule, [1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="covariances must have shape"):
        oracles.GaussianMixtureOracle(schedule, [1.0], [[0.0, 0.0]], [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="unknown prediction"):
        oracles.builtin_problem("gauss-1d").model("epsilon")
    with pytest.raises(ValueError, match="unknown problem 'gmm-9d'"):
        oracles.builtin_problem("gmm-9d")
