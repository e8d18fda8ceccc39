"""A 1 % change to any one generated weight is caught by the polynomial-exactness check.

Every coefficient of every generated stage (x, μ, each output weight, the SDE noise) is scaled
by 1.01 in turn; the numerical exactness check through the generated kernels
(``tests/helpers.stage_errors``) must then fail for that stage.
"""

from types import SimpleNamespace

import pytest

from mrs_numerics._generated import registry, updates_numpy
from mrs_numerics._generated.types import StepCoefficients
from tests.helpers import stage_errors

FIELDS = [
    (name, function, field)
    for name, info in registry.UPDATES.items()
    for function, _, labels in info.stages
    for field in ("x", "mu", *[f"output{j}" for j in range(len(labels))])
    + (("noise",) if info.method == "sde" else ())
]


def _mutated(function_name: str, field: str, factor: float = 1.01):
    original = getattr(updates_numpy, function_name)

    def mutated(*args):
        c = original(*args)
        if field.startswith("output"):
            j = int(field[len("output") :])
            outputs = tuple(w * factor if i == j else w for i, w in enumerate(c.outputs))
            return StepCoefficients(c.x, c.mu, outputs, c.noise)
        return c._replace(**{field: getattr(c, field) * factor})

    functions = {name: getattr(updates_numpy, name) for name in dir(updates_numpy)}
    functions[function_name] = mutated
    return SimpleNamespace(**functions)


DETECTION = 1e-9
"""The unmutated check passes below 1e-9 relative (typically ~1e-13); a mutation must exceed it.

Some weights are tiny by design (the third-order singlestep update's weight on its first stage
is O(h²): r₂ = 2/3 cancels its leading term), so a 1 % change moves the result by ~1e-6 only."""


@pytest.mark.parametrize(("name", "function", "field"), FIELDS)
def test_one_percent_weight_change_is_detected(name, function, field):
    clean = {f: (e, ne) for f, e, ne in stage_errors(name, 0)}
    assert clean[function][0] < DETECTION
    errors = {f: (e, ne) for f, e, ne in stage_errors(name, 0, _mutated(function, field))}
    error, noise_error = errors[function]
    detected = error > DETECTION or (noise_error is not None and noise_error > DETECTION)
    assert detected, (function, field, error, noise_error)


def test_the_corrector_stages_are_mutated_too():
    mutated = {function for _, function, _ in FIELDS}
    correctors = [info for info in registry.UPDATES.values() if info.scheme == "corrector"]
    assert correctors
    for info in correctors:
        assert {stage.function for stage in info.stages} <= mutated
