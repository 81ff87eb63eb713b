"""Every command README.md and docs/ show runs, or is checked as far as this machine allows.

Each shell line of a ```bash block, and each command in backticks in the prose, is read with shlex
and checked by its program:

- `dvc`: DVC's own parser accepts the arguments; every `-S` names a key of the params (its file, if
  named) with a value the schema accepts, for each value of a queued grid; the commands that only read
  (`repro` of an up-to-date pipeline, `dag`, `status`, `metrics`, `plots diff`, `exp show`) run in a
  copy of the default pipeline;
- `varireal`: its command line accepts the arguments; the commands that work offline on the tiny
  profile (`settings`, `check-params`, `plan`, `verify`, `mask`, `edit`, `run`) run in that copy;
- `python -m`: the module exists and, for a benchmark, stage or torchrun, its parser accepts the
  arguments; `sh tools/uv.sh` is the set-up, checked through the command it runs;
- `git`, `pytest`, `ruff`: the subcommand exists or the marker and paths do;
- SLURM's `salloc`/`srun` cannot run here: they are listed, not checked.

A command with a program this test does not know fails it: a new doc command comes with its check.
Placeholders (`<name>`, `N`, `REV`) are replaced by an example of what they stand for.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from pipeline_repo import REPO, dvc, run
from typer.testing import CliRunner

from varireal.cli import app
from varireal.params import METHOD_FILE, ParamsError
from varireal.settings.whole import load_all_params

DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
PROGRAMS = ("varireal", "dvc", "python", "sh", "git", "pytest", "ruff", "salloc", "srun")
SLURM = ("salloc", "srun")  # a cluster's scheduler: not on this machine
# What a placeholder stands for, in the commands that use it.
EXAMPLES = {
    "<name>": "demo",
    "<stage>": "masks",
    "<profile>": "tiny",
    "N": "1000",
    "S": "0",
    "REV": "HEAD",
    "<attr>": "color",
}
# dvc commands that only read the pipeline or its results: run for real.
DVC_READS = (("repro",), ("dag",), ("status",), ("metrics",), ("plots", "diff"), ("exp", "show"))
VARIREAL_RUNS = ("settings", "check-params", "plan", "verify", "mask", "edit", "run")


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str

    @property
    def words(self) -> list[str]:
        words = shlex.split(self.text, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VARIREAL_NODES=4 dvc ...: the environment
            words = words[1:]
        words = [EXAMPLES.get(word, word) for word in words if word != "..."]
        return [re.sub(r"<\w+>", lambda m: EXAMPLES.get(m.group(0), m.group(0)), word) for word in words]


def doc_commands() -> list[Command]:
    found: dict[str, Command] = {}
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"```(bash|sh|console)\n(.*?)```", text, flags=re.DOTALL):
            first = text.count("\n", 0, match.start(2)) + 1
            body = re.sub(r"\\\n\s*", " ", match.group(2))
            for offset, line in enumerate(body.splitlines()):
                for part in re.split(r" && | ; ", line.split(" # ")[0]):
                    if part.strip() and not part.strip().startswith("#"):
                        found.setdefault(part.strip(), Command(f"{path.name}:{first + offset}", part.strip()))
        prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
        for match in re.finditer(rf"`((?:{'|'.join(PROGRAMS)}) [^`]*)`", prose):
            line = prose.count("\n", 0, match.start()) + 1
            found.setdefault(match.group(1), Command(f"{path.name}:{line}", match.group(1)))
    return sorted(found.values(), key=lambda command: command.where)


@pytest.fixture(scope="module")
def workspace(repro, tmp_path_factory) -> Path:
    """A copy of the default pipeline, built, for the commands that run."""
    repo = tmp_path_factory.mktemp("docs") / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    return repo


def test_the_docs_show_commands_of_known_programs_only():
    commands = doc_commands()
    assert len(commands) > 80  # every distinct command of README.md and docs/
    unknown = [f"{c.where}: {c.text}" for c in commands if not c.words or c.words[0] not in PROGRAMS]
    assert not unknown, "a doc command this test cannot check:\n" + "\n".join(unknown)


@pytest.mark.parametrize("command", doc_commands(), ids=lambda c: f"{c.where} {c.text[:60]}")
def test_each_doc_command_runs_or_is_checked(command, workspace, monkeypatch):
    words = command.words
    monkeypatch.chdir(workspace)
    CHECKS[words[0]](words[1:], workspace)


# --- the checks, by program -------------------------------------------------------------------------


def check_dvc(args: list[str], repo: Path) -> None:
    from dvc.cli.parser import get_main_parser

    if all(not word.startswith("-") for word in args) and len(args) <= 2:  # a name in prose: `dvc exp apply`
        args = [*args, "--help"]
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as errors:
        try:
            parsed = get_main_parser().parse_args(args)
        except SystemExit as exit:
            if exit.code == 0 and args[-1] == "--help":
                return  # the command exists
            raise AssertionError(
                f"dvc {' '.join(args)}: DVC refuses the arguments: {errors.getvalue()[-300:]}"
            ) from exit
        except Exception as err:  # DVC's parser raises its own error after printing usage
            raise AssertionError(
                f"dvc {' '.join(args)}: DVC refuses the arguments: {errors.getvalue()[-300:]}"
            ) from err
    check_overrides(getattr(parsed, "set_param", None) or [], queued=bool(getattr(parsed, "queue", False)))
    if any(tuple(args[: len(read)]) == read for read in DVC_READS):
        result = dvc(*args, cwd=repo, check=False)
        assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def check_overrides(overrides: list[str], queued: bool) -> None:
    """Each `-S` as `dvc exp run` takes it: a queued grid's `key=a,b` is one run per value."""
    for override in overrides:
        key, _, value = override.partition("=")
        values = value.split(",") if queued else [value]
        for one in values:
            if one in EXAMPLES.values() or "<" in one:
                continue
            try:
                load_all_params(REPO / "params.yaml", [f"{key}={one}"])
            except ParamsError as err:
                raise AssertionError(f"-S {key}={one}: {err}") from err
            file = key.rpartition(":")[0]
            assert file in ("", "params.yaml", METHOD_FILE), f"-S {override}: no params file {file}"


def check_varireal(args: list[str], repo: Path) -> None:
    command = typer.main.get_command(app)
    parent = command.make_context("varireal", list(args), resilient_parsing=True)
    name = args[0] if args else None
    sub = command.get_command(parent, name) if name else None
    assert sub is not None, f"varireal {name}: no such command"
    if len(args) == 1 and any(param.required for param in sub.params):
        return  # a name in prose (`varireal edit`): the command exists; its use is shown elsewhere
    sub.make_context(name, _examples(name, args[1:], repo), parent=parent)  # raises on a wrong option
    overrides = [args[i + 1] for i, word in enumerate(args) if word in ("-S", "--set-param") and i + 1 < len(args)]
    check_overrides(overrides, queued=False)
    if name in VARIREAL_RUNS:
        result = CliRunner().invoke(app, _examples(name, args, repo), catch_exceptions=False)
        assert result.exit_code == 0, f"varireal {' '.join(args)}:\n{result.output}"


def _examples(name: str, args: list[str], repo: Path) -> list[str]:
    """The doc's example files, made real: a photo of the demo for x.jpg, a mask for --mask."""
    image = next((repo / "data/real/demo/train").rglob("*.jpg"), None) or next(
        (repo / "data/real/demo/train").rglob("*")
    )
    return [str(image) if word == "x.jpg" else word for word in args]


def check_python(args: list[str], repo: Path) -> None:
    if args[:1] == ["-c"]:
        result = run([sys.executable, "-c", args[1]], cwd=REPO, check=False)
        assert result.returncode == 0 and result.stdout, f"python -c {args[1]!r}:\n{result.stderr}"
        return
    assert args[:1] == ["-m"], f"python {' '.join(args)}: the docs run modules (python -m ...)"
    module, rest = args[1], args[2:]
    if module.startswith("benchmarks."):
        import importlib

        importlib.import_module(module).parser().parse_args(rest)
    elif module.startswith("stages."):
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{module}: no such stage"
    elif module == "torch.distributed.run":
        from torch.distributed.run import get_args_parser

        parsed = get_args_parser().parse_args(rest)
        assert parsed.module and parsed.training_script.startswith("stages."), rest
    else:
        raise AssertionError(f"python -m {module}: a module this test does not know")


def check_sh(args: list[str], repo: Path) -> None:
    assert args[:1] == ["tools/uv.sh"] and (REPO / "tools/uv.sh").is_file(), args
    if args[1:] in (["run"], ["sync"]):
        return  # a name in prose
    if args[1:3] == ["sync", "--frozen"]:
        assert (REPO / "uv.lock").is_file()  # the set-up itself: what .ci/run runs on a clean machine
    elif args[1:2] == ["run"]:
        CHECKS[args[2]](args[3:], repo)
    else:
        raise AssertionError(f"sh tools/uv.sh {' '.join(args[1:])}: the docs use `sync --frozen` and `run`")


def check_git(args: list[str], repo: Path) -> None:
    assert args[0] in {"add", "commit", "push", "pull", "clone", "checkout", "switch", "branch", "log"}, args
    for path in (word for word in args[1:] if not word.startswith("-") and "/" in word or word.endswith(".lock")):
        assert (REPO / path).exists() or path in ("dvc.lock",), f"git {' '.join(args)}: {path} does not exist"


def check_pytest(args: list[str], repo: Path) -> None:
    markers = re.findall(r'"(\w+): ', (REPO / "pyproject.toml").read_text())
    for i, word in enumerate(args):
        if word == "-m":
            assert set(re.findall(r"\w+", args[i + 1])) - {"not", "and", "or"} <= set(markers), args[i + 1]
        elif word.startswith("tests/"):
            assert (REPO / word).exists(), word


def check_ruff(args: list[str], repo: Path) -> None:
    assert args[0] in ("check", "format"), args


def check_slurm(args: list[str], repo: Path) -> None:
    pytest.skip("SLURM's commands cannot run on this machine; docs/scaling.md shows them as a cluster runs them")


CHECKS = {
    "dvc": check_dvc,
    "varireal": check_varireal,
    "python": check_python,
    "sh": check_sh,
    "git": check_git,
    "pytest": check_pytest,
    "ruff": check_ruff,
    **dict.fromkeys(SLURM, check_slurm),
}
