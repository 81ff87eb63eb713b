"""Each run's label checked against what the run itself recorded.

A run is labelled by its revision's params (params.yaml and method.yaml: attr, feas, train.data,
train.seed, dataset and every procedure switch). Two records say what actually ran, both git-tracked at that revision:

- dvc.lock: every param each stage ran with, as DVC wrote it when the stage ran;
- reports/train/params.yaml: what train logged (attr, feas, data, seed, dataset, profile,
  protocol) and how many real and synthetic images it read;

and reports/eval/metrics.json says how the evaluated weights were chosen, which the protocol
decides. A params.yaml committed without its dvc.lock (`git add dvc.lock reports` after
`dvc exp apply`) labels one run's results with another's params: any disagreement is an error
naming the run, the key and both values.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from varireal.finetune.kept import CHOICES
from varireal.study.runs import Run, StudyError, flatten

LOCK = "dvc.lock"
TRAIN_LOGGED = "reports/train/params.yaml"
# train's logged name -> the params.yaml key it came from ({profile}: the run's profile)
LOGGED_KEYS = {
    "attr": "attr",
    "feas": "feas",
    "data": "train.data",
    "seed": "train.seed",
    "dataset": "dataset",
    "profile": "profile",
    "protocol": "protocol.{profile}",
}
# The kinds of training image each data mode reads (train's logged `images` counts them).
READS = {"synthetic_real": {"real", "synthetic"}, "synthetic_only": {"synthetic"}, "real_only": {"real"}}
MISSING = object()


def read_at_revisions(repo: str | Path, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """{(rev, path): text or None when the revision has no such file}, with one `git cat-file --batch`."""
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return {}
    request = "".join(f"{rev}:{path}\n" for rev, path in wanted).encode()
    result = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=request, capture_output=True)
    if result.returncode != 0:
        raise StudyError(f"git cat-file in {repo} failed: {result.stderr.decode(errors='replace').strip()}")
    out, position, texts = result.stdout, 0, {}
    for key in wanted:
        end = out.index(b"\n", position)
        header = out[position:end].split()
        position = end + 1
        if header[-1] == b"missing" or len(header) < 3:
            texts[key] = None
            continue
        size = int(header[2])
        texts[key] = out[position : position + size].decode()
        position += size + 1
    return texts


def lock_params(lock_text: str, where: str) -> dict[str, tuple[str, str, Any]]:
    """{flattened param key: (params file, stage, value)} of every stage in a dvc.lock (the first stage per key)."""
    try:
        lock = yaml.safe_load(lock_text) or {}
    except yaml.YAMLError as err:
        raise StudyError(f"{where}: unreadable ({err})") from None
    recorded: dict[str, tuple[str, str, Any]] = {}
    for stage, entry in (lock.get("stages") or {}).items():
        for file, section in ((entry or {}).get("params") or {}).items():
            for key, value in (section or {}).items():
                flat = flatten(value, key) if isinstance(value, dict) else {key: value}
                for flat_key, flat_value in flat.items():
                    recorded.setdefault(flat_key, (file, stage, flat_value))
    return recorded


def disagreements(run: Run, lock_text: str | None, logged_text: str | None) -> list[str]:
    """One line per key where the run's params.yaml and its records differ (empty: the label holds)."""
    where = f"{run.name} ({run.rev[:7]})"
    lines = []
    if lock_text is not None:
        for key, (file, stage, value) in lock_params(lock_text, f"{where}: {LOCK}").items():
            label = run.params.get(key, MISSING)
            if label is MISSING or not _same(label, value):
                lines.append(f"{key}: {_show(label)} in {file}, {_show(value)} in {LOCK} (stage {stage})")
    if logged_text is not None:
        lines += _logged_disagreements(run, logged_text, where)
    recorded = run.metrics.get("checkpoint")
    protocol = run.params.get(f"protocol.{run.params.get('profile')}")
    if recorded is not None and protocol in CHOICES and CHOICES[protocol] != recorded:
        lines.append(
            f"protocol.{run.params.get('profile')}: {protocol!r} in params.yaml chooses the checkpoint "
            f"{CHOICES[protocol]!r}, but reports/eval/metrics.json says {recorded!r}"
        )
    return lines


def _logged_disagreements(run: Run, logged_text: str, where: str) -> list[str]:
    try:
        logged = yaml.safe_load(logged_text) or {}
    except yaml.YAMLError as err:
        raise StudyError(f"{where}: {TRAIN_LOGGED} unreadable ({err})") from None
    lines = []
    profile = str(run.params.get("profile"))
    for name, template in LOGGED_KEYS.items():
        key = template.format(profile=profile)
        if name in logged and not _same(run.params.get(key, MISSING), logged[name]):
            lines.append(
                f"{key}: {_show(run.params.get(key, MISSING))} in params.yaml, {_show(logged[name])} in {TRAIN_LOGGED} (what train logged)"
            )
    images = logged.get("images")
    data = run.params.get("train.data")
    if isinstance(images, dict) and data in READS:
        read = {kind for kind, count in images.items() if count}
        if read != READS[data]:
            counts = ", ".join(f"{count} {kind}" for kind, count in sorted(images.items()))
            lines.append(
                f"train.data: {data!r} in params.yaml reads {' and '.join(sorted(READS[data]))} images, "
                f"but train read {counts} ({TRAIN_LOGGED} images)"
            )
    return lines


def check_labels(runs: list[Run], repo: str | Path) -> None:
    """Raise StudyError listing every run whose params.yaml disagrees with what it recorded."""
    texts = read_at_revisions(repo, [(run.rev, path) for run in runs for path in (LOCK, TRAIN_LOGGED)])
    problems = []
    for run in runs:
        lines = disagreements(run, texts.get((run.rev, LOCK)), texts.get((run.rev, TRAIN_LOGGED)))
        if lines:
            problems.append(f"{run.name} ({run.rev[:7]}):\n" + "\n".join(f"    {line}" for line in lines))
    if problems:
        raise StudyError(
            "refusing to label runs by params their results were not made with:\n  "
            + "\n  ".join(problems)
            + "\nthe results of such a revision belong to other params (was params.yaml left out of the commit? "
            "`git add params.yaml method.yaml dvc.lock reports`); leave the run out with `varireal study --exclude NAME`"
        )


def _same(a: Any, b: Any) -> bool:
    """Equal as params: 1 and 1.0 are one value, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _show(value: Any) -> str:
    if value is MISSING:
        return "absent"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
