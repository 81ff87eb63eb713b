"""`varireal`: the pipeline's stages and a few helpers from the command line.

`dvc repro` is the normal way to run the study; these commands run one stage by hand
(exactly what DVC runs) or try a step on a single image.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer

from varireal import workspace
from varireal.params import ParamsError
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


@contextmanager
def exit_on(*errors: type[Exception], code: int = 1, prefix: str = "error: ") -> Iterator[None]:
    """A user's mistake (one of `errors`) ends the command with its message and `code`, no traceback."""
    try:
        yield
    except errors as err:
        typer.echo(f"{prefix}{err}", err=True)
        raise typer.Exit(code=code) from None


Attribute = Enum("Attribute", {name: name for name in ATTRIBUTES}, type=str)
Feasibility = Enum("Feasibility", {name: name for name in FEASIBILITIES}, type=str)


class Stage(str, Enum):
    fetch = "fetch"
    models = "models"
    masks = "masks"
    prompts = "prompts"
    edit = "edit"
    filter = "filter"
    gallery = "gallery"
    train = "train"
    evaluate = "evaluate"


@app.command()
def run(
    stage: Stage = typer.Argument(..., metavar="STAGE", help="a stage of dvc.yaml"),
    args: list[str] = typer.Argument(
        None,
        metavar="ARGS",
        show_default=False,
        help="the stage's own: ATTR FEAS for edit and filter, ATTR for gallery",
    ),
) -> None:
    """Run one pipeline stage in the current directory, as `dvc repro` does (`python -m stages.STAGE ARGS`).

    \b
    varireal run fetch
    varireal run edit color infeasible
    varireal run gallery texture
    """
    from stages import run_stage

    main = importlib.import_module(f"stages.{stage.value}").main
    takes_args, args = bool(inspect.signature(main).parameters), args or []
    if args and not takes_args:
        typer.echo(f"error: stage {stage.value} takes no arguments; got {' '.join(args)}", err=True)
        raise typer.Exit(code=2)
    # The stage gets ARGS, never varireal's own command line (which it would parse otherwise).
    run_stage(lambda: main(args) if takes_args else main())


@app.command("check-params")
def check_params(path: Path = typer.Argument(Path("params.yaml"))) -> None:
    """Validate params.yaml and print the settings the chosen profile will use."""
    from varireal.settings.whole import load_all_params

    with exit_on(ParamsError, code=2, prefix=""):
        params = load_all_params(path)
    typer.echo(
        f"{path}: valid (profile={params.profile}, dataset={params.dataset}, attr={params.attr}, feas={params.feas})"
    )


@app.command()
def mask(
    image: Path = typer.Option(..., exists=True, dir_okay=False, help="an image file"),
    class_name: str = typer.Option(..., help="what the object is, e.g. 'cat'"),
    out: Path = typer.Option(..., help="where to write the mask PNG"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    lock_file: Path = typer.Option(workspace.MODELS_LOCK, "--lock"),
) -> None:
    """Mask one image with the profile's detector and SAM 2 (run `dvc repro models` first)."""
    from varireal.devices import resolve_device
    from varireal.io import save_image
    from varireal.masks import mask_one
    from varireal.models.lock import read_lock
    from varireal.settings.whole import load_all_params

    params = load_all_params(params_file)
    device = resolve_device(params.masks.pick(params.profile).device)
    record, mask_image = mask_one(image, class_name, params, read_lock(lock_file), device)
    if mask_image is None:
        typer.echo(record["reason"], err=True)
        raise typer.Exit(code=1)
    save_image(out, mask_image)
    typer.echo(f"{out}: status={record['status']} score={record['score']} area={record['area_fraction']}")


@app.command()
def edit(
    image: Path = typer.Option(..., exists=True, dir_okay=False, help="an image file"),
    attr: Attribute = typer.Option(..., help="which attribute to change"),
    value: str = typer.Option(..., help="the new value, e.g. 'neon pink' or 'under the sea'"),
    out: Path = typer.Option(..., help="where to write the edited PNG"),
    mask_file: Path | None = typer.Option(
        None, "--mask", exists=True, dir_okay=False, help="object mask (white = object); default: detector + SAM 2"
    ),
    class_name: str = typer.Option("object", help="what the object is, e.g. 'cat' (prompts and detector)"),
    description: str = typer.Option("", help="a short description of the value for the prompts (default: the value)"),
    feasibility: Feasibility = typer.Option(
        Feasibility.feasible, help="which of the method's settings to use (they differ per feasibility)"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    lock_file: Path = typer.Option(workspace.MODELS_LOCK, "--lock"),
) -> None:
    """Edit one image with the profile's edit method for params' dataset (run `dvc repro models` first)."""
    from stages import USER_ERRORS
    from varireal.edit.by_hand import edit_file
    from varireal.models.lock import read_lock
    from varireal.settings.whole import load_all_params

    with exit_on(*USER_ERRORS):
        edited = edit_file(
            image,
            attr.value,
            value,
            out,
            load_all_params(params_file),
            read_lock(lock_file),
            mask_path=mask_file,
            class_name=class_name,
            description=description,
            feasibility=feasibility.value,
        )
    typer.echo(f"{out}: {attr.value} = {value!r} (prompt: {edited.prompt!r})")


@app.command()
def study(
    out: Path = typer.Option(
        Path("reports/study"), help="folder for table.md, table.csv, comparisons.csv, claims.csv and the figures"
    ),
    exclude: list[str] = typer.Option([], "--exclude", help="leave out a run, by experiment name or rev (repeatable)"),
    rev: list[str] = typer.Option(
        [], "--rev", help="a baseline commit, branch or tag: its runs and experiments (repeatable; default HEAD)"
    ),
    all_branches: bool = typer.Option(False, "--all-branches", help="every branch tip and its experiments"),
    compare: list[str] = typer.Option(
        [],
        "--compare",
        help="a procedure switch runs may differ in, one table per value (repeatable), e.g. filter.tiny.show_answer",
    ),
    params_file: Path = typer.Option(
        Path("params.yaml"), "--params", help="its `study:` section: margin, level, power"
    ),
    resamples: int = typer.Option(10_000, min=100, help="bootstrap resamples of the test images"),
    seed: int = typer.Option(0, help="seed of the bootstrap"),
) -> None:
    """The paper's table from the runs: datasets side by side, top-1 over seeds, paired comparisons and
    a verdict for each of the paper's claims; one table per procedure with --compare.

    Make the grid first (`varireal grid`); see docs/statistics.md.
    """
    from varireal.study.collect import collect, params_at, study_settings
    from varireal.study.runs import StudyError
    from varireal.study.whole import build_studies
    from varireal.study.write import write_study

    with exit_on(StudyError):
        settings = study_settings(params_file)
        runs, notes = collect(".", tuple(exclude), tuple(rev), all_branches)
        result = build_studies(runs, notes, tuple(compare), resamples, seed, settings, params_at("."))
    figures = write_study(result, out)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    filled = sum(int((study.cells["seeds"] > 0).sum()) for study in result.by.values())
    typer.echo(
        f"{out}: {len(runs)} runs, {len(result.datasets)} datasets, {len(result.procedures)} procedures; "
        f"{filled} of {sum(len(study.cells) for study in result.by.values())} cells with runs; "
        f"{', '.join(path.name for path in figures)}"
    )


@app.command()
def grid(
    dataset: list[str] = typer.Option([], "--dataset", help="a dataset of the grid (repeatable; default HEAD's)"),
    seeds: str = typer.Option("0,1,2", help="training seeds, a comma list"),
    attr: str = typer.Option("background,color,texture", help="attributes, a comma list"),
    feas: str = typer.Option("feasible,infeasible,mixed", help="feasibilities, a comma list"),
    data: str = typer.Option(
        "synthetic_real,synthetic_only,real_only", help="training data modes, a comma list (real_only: the baseline)"
    ),
    switch: list[str] = typer.Option(
        [],
        "--switch",
        help="a procedure switch and its values, KEY=V1,V2 (repeatable), e.g. filter.tiny.show_answer=true,false",
    ),
    queue: bool = typer.Option(False, "--queue", help="also queue the experiments whose baseline is HEAD"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="what `varireal plan` costs"),
) -> None:
    """Print the commands that make the whole grid (each baseline, then its experiments), with
    `varireal plan`'s cost first; with --queue, queue what can be queued from HEAD."""
    from varireal.study import grid as grids
    from varireal.study.collect import params_at
    from varireal.study.runs import StudyError

    with exit_on(StudyError):
        head = params_at(".") or {}
        spec = grids.from_options(head, dataset, seeds, attr, feas, data, switch)
        typer.echo("\n".join(grids.cost_lines(spec, head, lambda changes: grids.run_plan(changes, params_file))))
        lines = grids.script(spec, head, grids.head_name(Path(".")), grids.branch_names(Path(".")))
        typer.echo("\n".join(lines))
        if queue:
            for line in grids.queue(spec, head, Path(".")):
                typer.echo(f"queued: {line}", err=True)


@app.command()
def report(
    base: str = typer.Option(..., help="git revision to compare the workspace with, e.g. main or origin/main"),
    out: Path = typer.Option(
        Path("reports/pr.md"), help="the markdown file; its images go into a folder of the same name"
    ),
    resamples: int = typer.Option(10_000, min=100, help="bootstrap resamples of the test images"),
    seed: int = typer.Option(0, help="seed of the bootstrap"),
) -> None:
    """What this revision changed against BASE, as markdown for a pull request (metrics, paired test, plots)."""
    from varireal.study.report import report as write_report
    from varireal.study.runs import StudyError

    with exit_on(StudyError):
        path = write_report(base, out, ".", resamples, seed)
    typer.echo(f"{path}: against {base}")


@app.command()
def plan(
    set_params: list[str] = typer.Option(
        [], "-S", "--set-param", help="key=value, as dvc exp run -S (e.g. profile=paper)"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    rates: Path = typer.Option(None, help="rates file (default benchmarks/rates/<profile>.json)"),
    acceptance: float = typer.Option(
        0.7, min=0.0, max=1.0, help="per-candidate acceptance assumed for early stop and the reference's retries"
    ),
) -> None:
    """Print what `dvc repro` will generate and what it costs: images, slots, candidates, models, disk, device-hours."""
    from varireal.cost_plan import render
    from varireal.settings.whole import load_all_params

    with exit_on(ParamsError, ValueError, code=2, prefix=""):
        typer.echo(render(load_all_params(params_file, set_params), rates, acceptance))


@app.command()
def verify(
    lock_file: Path = typer.Option(workspace.MODELS_LOCK, "--lock"),
    real_root: Path = typer.Option(workspace.REAL, "--real", help="the fetched datasets, each with its sources.json"),
    downloads: Path = typer.Option(workspace.DOWNLOADS, "--downloads", help="where fetch kept the archives"),
    dvc_lock: Path = typer.Option(Path("dvc.lock"), "--dvc-lock", help="the dvc.lock the models lock must match"),
    trust_memo: bool = typer.Option(
        False,
        "--trust-memo",
        help="skip files whose stat the sha256 memo knows (as stages do); misses bytes changed under unchanged metadata",
    ),
) -> None:
    """Check the lock against dvc.lock, hash every model file of the lock and every dataset archive sources.json
    records; exit 1 if any differs."""
    from varireal.models.errors import LockError
    from varireal.models.lock import read_lock
    from varireal.verify import render
    from varireal.verify import verify as verify_all

    with exit_on(LockError, OSError, ValueError):
        report = verify_all(read_lock(lock_file), real_root, downloads, trust_memo, dvc_lock)
    typer.echo(render(report, real_root))
    raise typer.Exit(code=0 if report.ok else 1)


@app.command()
def settings(
    set_params: list[str] = typer.Option(
        [], "-S", "--set-param", help="key=value, as dvc exp run -S (e.g. profile=paper)"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object keyed by stage name as in dvc.yaml"),
    stage: list[str] = typer.Option(
        [], "--stage", help="only these stages (repeatable), e.g. train or edit@color-feasible"
    ),
) -> None:
    """Print the settings every stage will run with, fully resolved (profile, dataset, feasibility); loads no model."""
    from varireal.settings.whole import load_all_params
    from varireal.stage_settings import render_json, render_table, stage_settings

    with exit_on(ParamsError, ValueError, code=2, prefix=""):
        resolved = stage_settings(load_all_params(params_file, set_params))
        unknown = sorted(set(stage) - set(resolved))
        if unknown:
            raise ValueError(f"--stage {unknown[0]}: no such stage; stages: {', '.join(resolved)}")
    chosen = {name: values for name, values in resolved.items() if not stage or name in stage}
    typer.echo(render_json(chosen) if as_json else render_table(chosen), nl=False)


if __name__ == "__main__":
    app()
