"""Symbolic local-order proofs of every update, and proof that the proofs can fail."""

import pytest
import sympy as sp

from derivations import order_proofs, updates

UPDATES = updates.all_updates()
SINGLESTEP = [u for u in UPDATES if u.scheme == "singlestep"]
CORRECTORS = [u for u in UPDATES if u.scheme == "corrector"]
pytestmark = pytest.mark.xdist_group("sympy-proofs")


def _ids(update):
    return update.name


@pytest.mark.parametrize("update", UPDATES, ids=_ids)
def test_every_stage_is_exact_for_polynomials_of_degree_below_its_node_count(update):
    for stage in update.stages:
        assert order_proofs.exactness_residual(update, stage) == 0, stage.name


@pytest.mark.parametrize("update", UPDATES, ids=_ids)
def test_local_error_starts_at_h_to_the_order_plus_one(update):
    power, coefficient = order_proofs.local_error(update)
    assert power == update.order + 1
    assert coefficient != 0


@pytest.mark.parametrize(
    "update", [u for u in UPDATES if u.scheme != "singlestep" and u.parameters], ids=_ids
)
def test_multistep_leading_error_depends_on_the_symbolic_step_ratios(update):
    _, coefficient = order_proofs.local_error(update)
    assert set(update.parameters) <= coefficient.free_symbols


@pytest.mark.parametrize("update", SINGLESTEP, ids=_ids)
def test_singlestep_keeps_its_order_for_a_state_dependent_model(update):
    fixed = order_proofs.singlestep_fixed_parameters(update)
    power, _ = order_proofs.state_dependent_local_error(update, fixed)
    assert power >= update.order + 1


@pytest.mark.parametrize("prediction", ["data", "noise"])
def test_third_order_singlestep_condition_is_derived_as_r2_two_thirds(prediction):
    update = updates.singlestep("ode", prediction, 3)
    power, coefficient = order_proofs.state_dependent_local_error(update)
    assert power == 3, "with r2 free the state-dependent residual must show the h^3 condition"
    assert updates.r2 in coefficient.free_symbols
    assert order_proofs.third_order_singlestep_condition(update) == [sp.Rational(2, 3)]
    assert sp.Rational(2, 3) == updates.SINGLESTEP_THIRD_ORDER_R2


@pytest.mark.parametrize("update", CORRECTORS, ids=_ids)
def test_corrector_keeps_its_order_with_outputs_reused_from_predicted_states(update):
    """Given outputs off the exact path by e_j h^K (K the corrected order): O(h^{K+1})."""
    order = update.order
    reused = order_proofs.reused_outputs(update, order)
    assert {label for label, _ in reused} == {f"m{j}" for j in range(order - 1)}
    power, _ = order_proofs.state_dependent_local_error(update, (), reused)
    assert power >= order + 1


@pytest.mark.parametrize("update", CORRECTORS, ids=_ids)
def test_corrector_proof_sees_the_reused_outputs(update):
    """Outputs off the path by h^{K−1} cost one order: the e_j are really in the proof."""
    order = update.order
    reused = order_proofs.reused_outputs(update, order - 1)
    power, coefficient = order_proofs.state_dependent_local_error(update, (), reused)
    assert power == order
    assert {sp.Symbol("e_m0", real=True)} <= coefficient.free_symbols


@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("order", updates.CORRECTOR_ORDERS)
def test_every_step_of_a_corrected_run_has_the_local_error_its_global_order_needs(
    prediction, order
):
    steps = order_proofs.corrected_run(prediction, order)
    assert [s.step for s in steps][-2:] == ["steady", "last"]
    for step in steps:
        assert step.power >= step.needed, step
    assert steps[-2].needed == order + 1 and steps[-1].update.scheme == "multistep"


def _perturbed(scale_index, factor):
    original = updates.kernel_weights

    def weights(stage, kappa):
        values = list(original(stage, kappa))
        values[scale_index % len(values)] *= factor
        return tuple(values)

    return weights


@pytest.mark.parametrize(
    "update",
    [
        updates.multistep("ode", "data", 3),
        updates.multistep("sde", "noise", 2),
        updates.singlestep("ode", "data", 2),
        updates.corrector("ode", "data", 3),
        updates.corrector("ode", "noise", 2),
        updates.corrector("ode", "noise", 4),
    ],
    ids=_ids,
)
@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_one_percent_weight_change_fails_the_proofs(update, index, monkeypatch):
    monkeypatch.setattr(order_proofs, "kernel_weights", _perturbed(index, sp.Rational(101, 100)))
    stage = update.stages[-1]
    assert order_proofs.exactness_residual(update, stage) != 0
    power, _ = order_proofs.local_error.__wrapped__(update)
    assert power < update.order + 1
    if update.scheme == "corrector":
        reused = order_proofs.reused_outputs(update, update.order)
        power, _ = order_proofs.state_dependent_local_error.__wrapped__(update, (), reused)
        assert power < update.order + 1


def test_weights_derived_for_uniform_steps_fail_on_symbolic_ratios(monkeypatch):
    """Uniform steps hide errors: r1 = r2 = 1 weights are not third order for general ratios."""
    original = updates.kernel_weights

    def uniform(stage, kappa):
        return tuple(
            sp.sympify(w).subs({updates.r1: 1, updates.r2: 1}) for w in original(stage, kappa)
        )

    monkeypatch.setattr(order_proofs, "kernel_weights", uniform)
    update = updates.multistep("ode", "data", 3)
    power, _ = order_proofs.local_error.__wrapped__(update)
    assert power < 4


def test_unknown_orders_and_methods_are_rejected():
    with pytest.raises(
        ValueError, match=r"multistep order 3 is not derived for sde; allowed: \(1, 2\)"
    ):
        updates.multistep("sde", "data", 3)
    with pytest.raises(ValueError, match="singlestep updates are derived for method 'ode'"):
        updates.singlestep("sde", "data", 2)
    with pytest.raises(ValueError, match="correctors are derived for method 'ode'"):
        updates.corrector("sde", "data", 2)
    with pytest.raises(ValueError, match=r"orders \(2, 3, 4\); got method 'ode', order 5"):
        updates.corrector("ode", "data", 5)
