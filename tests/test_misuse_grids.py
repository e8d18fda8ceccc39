"""Misuse of tuned grids: grid files parsed field by field, grids bound to the run that uses
them (schedule, sampler, network, NFE of the sampler that runs), tuning that fails is no
success, and the command line's grid files (restore, benchmark, grids)."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrs_numerics import schedules
from mrs_numerics._errors import InputError
from mrs_numerics.cli import main
from mrs_numerics.models.grid_binding import GridTransferWarning, bind_grid
from mrs_numerics.models.network_identity import shipped_network_identity
from mrs_numerics.models.tuned_grids import (
    GRID_FILE_VERSION,
    TunedGrid,
    grid_file_text,
    parse_grid_file,
    read_grid_file,
    select_grid,
    shipped_grid,
    write_grid_file,
)
from mrs_numerics.restoration.quality.options import DEFAULT_SAMPLERS, QualityOptions, plan_runs
from mrs_numerics.restoration.restore import check_request, choose_sampling, restore
from mrs_numerics.schedules.identity import same_schedule, schedule_identity
from mrs_numerics.solvers.base import prior_sample
from mrs_numerics.solvers.configuration import sampler_configuration, sampler_from_configuration
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.presets import DEFAULT_FEW_STEP_VARIANT, FEW_STEP_VARIANTS
from mrs_numerics.solvers.registry import SOLVERS
from mrs_numerics.tuning.fit import TuningFailedError, tune_timesteps
from mrs_numerics.tuning.teacher import converged_output
from mrs_numerics.verification.oracles import GaussianData

torch.set_num_threads(1)
V1_FILE = Path(__file__).parent / "fixtures" / "grids_v1_denoise-data.json"
COSINE = schedules.cosine()
IRSDE = schedules.irsde()  # T = 100, the IR-SDE/DA-CLIP training tables


def _shipped5() -> TunedGrid:
    grid = shipped_grid("denoise-data", DEFAULT_FEW_STEP_VARIANT, 5)
    assert grid is not None
    return grid


def _valid_text() -> str:
    return grid_file_text([_shipped5()])


def _record() -> dict:
    return json.loads(_valid_text())["grids"][0]


def _file_with(record) -> str:
    content = json.loads(_valid_text())
    content["grids"] = [record]
    return json.dumps(content)


def _zero(x, t, mu):
    return torch.zeros_like(x)


def _clean(x, t, mu):
    return mu


# ---------------------------------------------------------------------------------------------
# Grid files: parsed field by field
# ---------------------------------------------------------------------------------------------


def _drop(name):
    def change(record):
        del record[name]

    return change


def _set(path, value):
    def change(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


CORRUPTIONS = {
    "missing-nfe": (_drop("nfe"), "missing field nfe"),
    "missing-schedule": (_drop("schedule"), "missing field schedule"),
    "string-time": (_set(("timesteps", 1), "0.5"), "field timesteps[1] must be a finite number"),
    "not-decreasing": (_set(("timesteps", 2), 0.9), "timesteps must be strictly decreasing"),
    "nan-lam": (_set(("lams", 2), math.nan), "field lams[2] must be a finite number"),
    "short-lams": (lambda r: r["lams"].pop(), "field lams has 5 values for 6 timesteps"),
    "one-time": (lambda r: r.update(timesteps=[1.0], lams=[0.0]), "at least 2 numbers"),
    "unknown-solver": (_set(("sampler", "solver"), "mrs-ode-9-data"), "sampler.solver"),
    "unknown-option": (_set(("sampler", "options", "warp"), 2), "sampler.options has 'warp'"),
    "bad-start": (_set(("sampler", "options", "start"), "fast"), "sampler.options.start"),
    "string-flag": (_set(("sampler", "options", "denoise_last"), "no"), "denoise_last"),
    "sampler-version": (_set(("sampler", "format_version"), 7), "sampler.format_version"),
    "bad-sha": (_set(("network", "sha256"), "xyz"), "network.sha256"),
    "no-t-max": (lambda r: r["schedule"].pop("t_max"), "schedule.t_max"),
    "outside-range": (_set(("schedule", "t_max"), 0.5), "outside the time range"),
    "boolean-nfe": (_set(("nfe",), True), "field nfe"),
    "nfe-below-steps": (_set(("nfe",), 2), "field nfe"),
    "string-fidelity": (_set(("fidelity_db",), "high"), "field fidelity_db"),
    "entry-not-object": (None, "an entry must be an object"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_entry_is_refused_naming_file_entry_and_field(case):
    change, message = CORRUPTIONS[case]
    record = _record()
    if change is None:
        record = [1, 2]
    else:
        change(record)
    with pytest.raises(InputError) as refused:
        parse_grid_file(_file_with(record), "g.json")
    text = str(refused.value)
    assert text.startswith("g.json: entry 0: ") and message in text and "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ("", "not JSON"),
        ('{"grids": []}', "not a tuned-grid file"),
        ('{"format": "mrs-numerics tuned grids", "format_version": 3, "grids": []}', "versions"),
        ('{"format": "mrs-numerics tuned grids", "format_version": 2, "grids": {}}', "grids"),
    ],
)
def test_a_file_that_is_not_a_grid_file_is_one_line(content, message):
    with pytest.raises(InputError, match=message):
        parse_grid_file(content, "g.json")


def test_a_binary_file_a_folder_and_a_missing_file_are_one_line(tmp_path):
    binary = tmp_path / "weights.json"
    binary.write_bytes(b"\x80\x02\xff\x00")
    for path, message in (
        (binary, "not text"),
        (tmp_path, "is a folder"),
        (tmp_path / "n.json", "does not exist"),
    ):
        with pytest.raises(InputError, match=message):
            read_grid_file(path)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


RECORD_PATHS = [path for path in _paths(_record()) if path]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RECORD_PATHS), JSON_VALUES, st.booleans())
def test_random_corruptions_give_a_named_input_error_or_a_valid_grid(path, value, delete):
    record = copy.deepcopy(_record())
    target = record
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    try:
        (grid,) = parse_grid_file(_file_with(record), "g.json")
    except InputError as error:
        assert str(error).startswith("g.json: entry 0: ") and "\n" not in str(error)
        return
    # what parses is a usable grid: strictly decreasing times, a buildable sampler
    assert bool((grid.timesteps[1:] < grid.timesteps[:-1]).all())
    assert torch.isfinite(grid.lams).all() and grid.lams.numel() == grid.timesteps.numel()
    sampler_from_configuration(grid.sampler, COSINE, "data")


def test_a_version_1_file_is_read_and_upgraded_for_shipped_networks():
    grids = read_grid_file(V1_FILE)
    upgraded = {(g.variant, g.nfe): g for g in grids}
    v2 = {
        (g.variant, g.nfe): g
        for g in (shipped_grid("denoise-data", v, 5) for v in ("ms3", "unic2"))
    }
    for key, grid in upgraded.items():
        assert torch.equal(grid.timesteps, v2[key].timesteps)
        assert grid.sampler == v2[key].sampler and grid.schedule is not None
        assert same_schedule(grid.schedule, schedule_identity(COSINE))
        assert grid.network == shipped_network_identity("denoise-data")


def test_a_version_1_record_of_another_network_is_refused_when_bound(tmp_path):
    content = json.loads(V1_FILE.read_text())
    content["grids"][0]["model"] = "my-own-net"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(content))
    grid = read_grid_file(path)[0]
    assert grid.schedule is None
    sampler = FEW_STEP_VARIANTS["ms3"].make(COSINE, "data")
    with pytest.raises(InputError, match=r"version-1 record .* re-tune"):
        bind_grid(grid, COSINE, sampler, None, 5)


def test_the_shipped_files_are_version_2_and_round_trip(tmp_path):
    grid = _shipped5()
    path = write_grid_file(tmp_path / "g.json", [grid])
    assert json.loads(path.read_text())["format_version"] == GRID_FILE_VERSION == 2
    (back,) = read_grid_file(path)
    assert back.to_dict() == grid.to_dict()


def test_a_grid_file_is_not_replaced_unasked(tmp_path):
    path = tmp_path / "g.json"
    path.write_text("precious")
    with pytest.raises(InputError, match="exists and would be replaced"):
        write_grid_file(path, [_shipped5()])
    assert path.read_text() == "precious"


def test_the_sampler_dict_rebuilds_the_same_sampler_for_every_solver():
    for solver_id in SOLVERS:
        sampler = make_sampler(solver_id, COSINE, "data", clip_x0=(0.0, 1.0))
        record = sampler_configuration(sampler)
        assert json.loads(json.dumps(record)) == record and record["format_version"] == 1
        rebuilt = sampler_from_configuration(record, COSINE, "data")
        assert sampler_configuration(rebuilt) == record
        assert rebuilt.calls(4) == sampler.calls(4)


# ---------------------------------------------------------------------------------------------
# Binding: schedule, budget, sampler, network
# ---------------------------------------------------------------------------------------------


def test_the_issue_example_a_cosine_grid_on_an_irsde_table_is_remapped_with_a_warning():
    grid = _shipped5()
    with pytest.warns(GridTransferWarning, match="re-mapped through λ"):
        chosen = choose_sampling(IRSDE, "noise", 5, None, grid)
    times = chosen.timesteps
    # started at the table's noisy end, not at t = 1 of 100
    assert float(times[0]) == pytest.approx(100.0) and float(times.min()) >= 0.0
    assert torch.allclose(IRSDE.lam(times), grid.lams, atol=1e-6)
    assert "re-mapped" in chosen.description


def test_restore_with_a_grid_on_another_schedule_remaps_it():
    with pytest.warns(GridTransferWarning):
        out = restore(torch.rand(3, 4, 4), _clean, "data", IRSDE, nfe=5, grid=_shipped5())
    assert out.shape == (3, 4, 4) and torch.isfinite(out).all()


def test_a_grid_whose_lambda_ends_lie_outside_the_schedule_is_refused():
    official = schedules.irsde(theta0_offset=False)  # λ(0) ≈ 6.11 < the grid's 7.84
    with pytest.raises(InputError, match="cannot be re-mapped"):
        choose_sampling(official, "noise", 5, None, _shipped5())


def test_the_budget_is_checked_on_the_sampler_that_runs():
    images = torch.rand(3, 4, 4)
    with pytest.raises(InputError, match=r"heun-ode runs in 10 network calls.*budget of 5"):
        restore(images, _zero, "data", COSINE, sampler="heun-ode", nfe=5, grid=_shipped5())


def test_another_sampler_and_another_network_warn_and_run():
    grid = _shipped5()
    sampler = FEW_STEP_VARIANTS["ms2"].make(COSINE, "data")
    other = {"name": "mine.pth", "sha256": "0" * 64}
    with pytest.warns(GridTransferWarning) as caught:
        bound = bind_grid(grid, COSINE, sampler, other, 10)
    messages = " | ".join(str(w.message) for w in caught)
    assert "tuned for mrs-ode-3-data" in messages and "network denoise-data" in messages
    assert torch.equal(bound.timesteps, grid.timesteps) and bound.calls == sampler.calls(5)


def test_the_grid_on_its_own_run_binds_silently_and_bit_identically():
    grid = _shipped5()
    sampler = FEW_STEP_VARIANTS["ms3"].make(COSINE, "data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bound = bind_grid(grid, COSINE, sampler, shipped_network_identity("denoise-data"), 5)
        shipped = choose_sampling(COSINE, "data", 5, model_name="denoise-data")
    assert torch.equal(bound.timesteps, grid.timesteps) and not bound.notes
    assert torch.equal(shipped.timesteps, grid.timesteps) and shipped.nfe == 5


def test_an_unknown_network_is_noted_not_warned():
    sampler = FEW_STEP_VARIANTS["ms3"].make(COSINE, "data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bound = bind_grid(_shipped5(), COSINE, sampler, None, 5)
    assert any("network is unknown" in note for note in bound.notes)


def test_a_given_grid_runs_the_sampler_it_was_tuned_for():
    grid = shipped_grid("denoise-data", "unic2", 5)
    chosen = choose_sampling(COSINE, "data", 5, None, grid)
    assert chosen.sampler.solver_id == "mrs-ode-2-data-unic" and chosen.name == "unic2"


SCHEDULES = st.one_of(
    st.builds(
        schedules.cosine,
        max_sigma=st.floats(0.02, 1.0),
        eps=st.floats(1e-3, 0.05),
    ),
    st.builds(schedules.linear, max_sigma=st.floats(0.02, 1.0)),
    st.builds(
        schedules.irsde,
        kind=st.sampled_from(["cosine", "linear"]),
        T=st.integers(20, 400),
        max_sigma=st.floats(0.02, 1.0),
        theta0_offset=st.booleans(),
    ),
)


@settings(max_examples=40, deadline=None)
@given(SCHEDULES)
def test_binding_a_grid_to_any_schedule_keeps_its_lambdas_or_refuses(schedule):
    grid = _shipped5()
    sampler = FEW_STEP_VARIANTS["ms3"].make(schedule, "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            bound = bind_grid(grid, schedule, sampler, None, 5)
        except InputError as error:
            assert "cannot be re-mapped" in str(error) or "fails" in str(error)
            return
    times = bound.timesteps
    assert bool((times[1:] < times[:-1]).all())
    assert float(schedule.t_min) <= float(times.min()) and float(times.max()) <= float(
        schedule.t_max
    )
    if bound.remapped:
        assert any(issubclass(w.category, GridTransferWarning) for w in caught)
        assert torch.allclose(schedule.lam(times), grid.lams, atol=1e-5, rtol=1e-6)
    else:
        assert torch.equal(times, grid.timesteps)


# ---------------------------------------------------------------------------------------------
# Grid files chosen by (sampler, NFE)
# ---------------------------------------------------------------------------------------------


def test_a_grid_file_entry_is_chosen_for_sampler_and_budget_and_said():
    chosen = choose_sampling(COSINE, "data", 7, "unic2", str(V1_FILE), "denoise-data")
    assert "entry 1 (unic2, NFE 5)" in chosen.description and chosen.nfe == 5
    default = choose_sampling(COSINE, "data", 5, None, str(V1_FILE), "denoise-data")
    assert default.name == DEFAULT_FEW_STEP_VARIANT and "entry 0" in default.description


def test_no_fitting_entry_lists_what_the_file_holds():
    with pytest.raises(InputError, match="no grid within 4 NFE; it holds ms3 at NFE 5; unic2"):
        choose_sampling(COSINE, "data", 4, None, str(V1_FILE))
    with pytest.raises(InputError, match="no grid for ms2 within 10 NFE"):
        check_request("ms2", 10, str(V1_FILE))


def test_entries_of_several_samplers_at_one_budget_need_a_name():
    grids = read_grid_file(V1_FILE)
    with pytest.raises(InputError, match="name the sampler"):
        select_grid(grids, None, 5, "g.json", preferred="")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("sparse", "unknown grid 'sparse'"),
        ("nothing.json", "grid file nothing.json does not exist"),
    ],
)
def test_a_bad_grid_is_refused_before_any_network_loads(grid, message):
    with pytest.raises(InputError, match=message):
        check_request(None, 5, grid)


# ---------------------------------------------------------------------------------------------
# Tuning that fails is not a success
# ---------------------------------------------------------------------------------------------


def _problem():
    return GaussianData.random(COSINE, batch=2, dim=2, variance=0.1, seed=3)


def test_a_grid_finer_than_its_teacher_is_refused_before_the_teacher():
    problem = _problem()
    calls = []

    def counted(x, t, mu):
        calls.append(1)
        return problem.data(x, t, mu)

    sampler = make_sampler("mrs-ode-2-data", COSINE, "data")
    with pytest.raises(InputError, match="finer teacher than 8 steps"):
        tune_timesteps(sampler, counted, problem.mu, 10, teacher_steps=8)
    assert not calls


def test_a_fit_whose_every_candidate_fails_raises():
    problem = _problem()
    sampler = make_sampler("mrs-ode-2-data", COSINE, "data")
    teacher_model = problem.data

    def nan_on_coarse_grids(x, t, mu):
        return teacher_model(x, t, mu) * (math.nan if NAN[0] else 1.0)

    NAN = [False]
    x_T = prior_sample(
        COSINE, problem.mu, sampler.timesteps(1)[0], torch.Generator().manual_seed(0)
    )
    teacher = converged_output(sampler, teacher_model, problem.mu, x_T, 16, 0)
    NAN[0] = True
    with pytest.raises(TuningFailedError, match=r"every one of the .* candidate grids"):
        tune_timesteps(
            sampler, nan_on_coarse_grids, problem.mu, 3, teacher=teacher, max_evaluations=4
        )


def test_a_tuned_record_says_what_it_was_made_for():
    problem = _problem()
    sampler = FEW_STEP_VARIANTS["ms3"].make(COSINE, "data")
    network = {"name": "toy", "sha256": "a" * 64}
    grid = tune_timesteps(
        sampler, problem.data, problem.mu, 3, teacher_steps=16, max_evaluations=4, network=network
    )
    assert grid.sampler == sampler_configuration(sampler) and grid.network == network
    assert same_schedule(grid.schedule, schedule_identity(COSINE))
    (back,) = parse_grid_file(grid_file_text([grid]))
    assert back.to_dict() == grid.to_dict()


# ---------------------------------------------------------------------------------------------
# Benchmark and command line
# ---------------------------------------------------------------------------------------------


def test_the_benchmark_default_includes_what_restore_runs_by_default():
    assert DEFAULT_SAMPLERS[: len(SOLVERS)] == tuple(SOLVERS)
    assert DEFAULT_FEW_STEP_VARIANT in QualityOptions().samplers
    options = QualityOptions(samplers=(DEFAULT_FEW_STEP_VARIANT,), nfes=(5, 7))
    runs = {run.budget: run for run in plan_runs(options, COSINE, "denoise-data")}
    restored = choose_sampling(COSINE, "data", 5, model_name="denoise-data")
    assert runs[5].timesteps == tuple(restored.timesteps.tolist())
    assert runs[7].timesteps is None and runs[7].steps is not None  # no tuned grid: uniform λ


def test_the_benchmark_takes_a_grid_file_and_refuses_a_bad_one(tmp_path):
    options = QualityOptions(samplers=("ms3", "unic2", "euler-ode"), nfes=(5,), grid=str(V1_FILE))
    runs = {run.sampler: run for run in plan_runs(options.validate(), COSINE, "denoise-data")}
    assert runs["ms3"].timesteps is not None and runs["unic2"].timesteps is not None
    assert runs["euler-ode"].steps is None and "no grid for euler-ode" in runs["euler-ode"].reason
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        QualityOptions(samplers=(f"ms3@{broken}",)).validate()


def _error(capsys, command):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mrs-numerics {command}: error: "), err
    return err


def test_grids_lists_what_a_file_holds(capsys):
    assert main(["grids", str(V1_FILE)]) == 0
    out = capsys.readouterr().out
    for text in (
        "[0] ms3 = mrs-ode-3-data",
        "NFE 5",
        "network denoise-data (sha256",
        "schedule cosine",
        "calibration 8 crops",
        "held-out 47.25 dB",
    ):
        assert text in out, text


def test_grids_refuses_a_malformed_file_in_one_line(tmp_path, capsys):
    record = _record()
    record["timesteps"][1] = "soon"
    path = tmp_path / "bad.json"
    path.write_text(_file_with(record))
    assert main(["grids", str(path)]) == 2
    assert "entry 0: field timesteps[1]" in _error(capsys, "grids")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("missing.json", "grid file missing.json does not exist"),
        ("sparse", "unknown grid 'sparse'"),
    ],
)
def test_restore_refuses_a_bad_grid_file_in_one_line(grid, message, tmp_path, capsys):
    image = tmp_path / "in.png"
    image.write_bytes(b"")
    status = main(
        ["restore", str(image), "-o", str(tmp_path / "o.png"), "--task", "denoise", "--grid", grid]
    )
    assert status == 2 and message in _error(capsys, "restore")


def test_restore_refuses_a_file_without_an_entry_for_the_budget(tmp_path, capsys):
    image = tmp_path / "in.png"
    image.write_bytes(b"")
    command = ["restore", str(image), "-o", str(tmp_path / "o.png"), "--task", "denoise"]
    assert main([*command, "--grid", str(V1_FILE), "--nfe", "3"]) == 2
    assert "it holds ms3 at NFE 5; unic2 at NFE 5" in _error(capsys, "restore")


def test_restore_runs_on_a_grid_file_and_says_which_entry(tmp_path, capsys):
    from mrs_numerics.imaging.files import write_image

    image = tmp_path / "in.png"
    write_image(image, torch.rand(3, 8, 8))
    command = ["restore", str(image), "-o", str(tmp_path / "o.png"), "--task", "denoise"]
    assert main([*command, "--grid", str(V1_FILE), "--nfe", "5", "--sampler", "unic2"]) == 0
    out = capsys.readouterr().out
    assert "entry 1 (unic2, NFE 5)" in out and "5 network calls" in out
    assert (tmp_path / "o.png").is_file()


def test_adding_the_default_variant_leaves_the_other_rows_unchanged():
    from mrs_numerics.imaging.photos import HELDOUT_PHOTOS
    from mrs_numerics.restoration.quality.run import run_quality

    def smooth(x, t, mu):
        return mu + 0.1 * torch.tanh(x - mu)

    common = {"crop": 20, "seeds": 1, "photos": HELDOUT_PHOTOS[:1], "nfes": (3, 5)}
    common |= {"reference_steps": 40, "sde_refinement": 2}
    alone = QualityOptions(samplers=("mrs-ode-2-data", "posterior"), **common)
    added = QualityOptions(samplers=("mrs-ode-2-data", "posterior", "ms3"), **common)
    before = run_quality(smooth, "data", COSINE, alone, "denoise-data")
    after = run_quality(smooth, "data", COSINE, added, "denoise-data")
    for row in before.rows:
        again = after.row(row.sampler, row.nfe_budget)
        assert (row.psnr, row.ssim, row.fidelity_db, row.nfe) == (
            again.psnr,
            again.ssim,
            again.fidelity_db,
            again.nfe,
        )
    assert after.row("ms3", 5).status == "ok" and after.row("ms3", 5).nfe == 5
