"""`varireal report --base REV`: what a pull request changed, as one markdown file.

The workspace (this revision, after `dvc repro`) against REV: how each side chose its
checkpoint (reports/eval/metrics.json `checkpoint`; a line above the tables says when a number
comes from weights chosen on the test split); `dvc metrics diff --all` as a table (top-1 shown
even when unchanged); the test predictions paired image by image (difference in top-1, paired
bootstrap interval, exact McNemar p; not paired when the two chose their checkpoints
differently); the training curves and per-class accuracy of both revisions from
`dvc plots diff`, rendered to PNG with vl-convert; and the galleries that changed, before and
after. Images go into a folder named after the markdown file (reports/pr.md -> reports/pr/),
linked relatively, so `cml comment update reports/pr.md` uploads them with the text.

`dvc plots diff`'s own page loads Vega from a CDN and shows blank charts offline; the same
folder gets plots.html, every plot of both revisions drawn to inline SVG (and the images
inlined): a page that needs no network.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from varireal.io import write_bytes, write_text
from varireal.study.collect import parse_predictions, read_predictions
from varireal.study.runs import (
    CHECKPOINT_NOTES,
    METRICS,
    OPTIMISTIC,
    PREDICTIONS,
    StudyError,
    checkpoint_choice,
    flatten,
)
from varireal.study.stats import paired

# Plots drawn in the report (by id prefix): the training curves and per-class accuracy. The
# confusion matrix is left out: 196 x 196 classes at the paper's sizes do not read in a comment.
CURVES = ("reports/train/plots", "reports/eval/per_class.csv")
GALLERY = "reports/gallery/"


def dvc(*args: str, repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)


def resolve(rev: str, repo: Path) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StudyError(
            f"--base {rev}: not a git revision here ({result.stderr.strip()}); fetch it first (git fetch origin)"
        )
    return result.stdout.strip()


def _read_at(path: str, rev: str | None, repo: Path) -> str | None:
    """A git-tracked file of the workspace (rev None) or of a commit; None when it is not there."""
    if rev is None:
        file = repo / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def checkpoint_at(rev: str | None, repo: Path) -> str:
    """How the workspace's (rev None) or a commit's evaluated weights were chosen: best_test, final or best_val.
    metrics.json is git-tracked (dvc.yaml: cache false); a revision without it or its `checkpoint` key
    falls back on its params (collect.checkpoint_choice)."""
    where = f"{METRICS} at {rev or 'the workspace'}"
    try:
        metrics = json.loads(_read_at(METRICS, rev, repo) or "{}")
        params = yaml.safe_load(_read_at("params.yaml", rev, repo) or "") or {}
    except (ValueError, yaml.YAMLError) as err:
        raise StudyError(f"{where} or its params.yaml: unreadable ({err})") from None
    if not isinstance(metrics, dict) or not isinstance(params, dict):
        raise StudyError(f"{where} or its params.yaml: expected a mapping at the top")
    return checkpoint_choice(metrics, flatten(params), where)


def checkpoint_section(here: str, there: str, base: str) -> list[str]:
    """The optimistic line when a side's numbers come from weights chosen on test, then both sides' choice."""
    on_test = [side for side, choice in (("this revision", here), (base, there)) if choice == "best_test"]
    warning = [f"**{OPTIMISTIC}** ({' and '.join(on_test)})", ""] if on_test else []
    return [
        *warning,
        f"Checkpoint: this revision {here} ({CHECKPOINT_NOTES[here]}); {base} {there} ({CHECKPOINT_NOTES[there]}).",
    ]


def metrics_section(base: str, repo: Path) -> list[str]:
    result = dvc("metrics", "diff", "--md", "--all", base, repo=repo)  # --all: unchanged metrics too
    if result.returncode != 0:
        return [f"`dvc metrics diff --all {base}` failed: {result.stderr.strip()}"]
    table = result.stdout.strip()
    return [table] if table else [f"No metric differs from {base}."]


def paired_section(
    base: str, base_sha: str, repo: Path, resamples: int, seed: int, checkpoints: tuple[str, str]
) -> list[str]:
    """One line: this revision - base on the same test images, or why they cannot be paired.
    `checkpoints`: how (this revision, base) chose their weights; differing choices are not paired."""
    here, there = checkpoints
    if here != there:
        return [
            f"Not paired: the checkpoints were chosen differently ({here} here, {there} in {base}): "
            "weights chosen on the test split, on val or not at all are not compared image by image."
        ]
    try:
        new = parse_predictions((repo / PREDICTIONS).read_text())
    except OSError as err:
        return [f"No predictions in the workspace ({err}): run `dvc repro` first."]
    try:
        old = read_predictions(repo, base_sha, base)
    except StudyError as err:
        return [f"Not paired: {err}"]
    if new[["id", "label"]].values.tolist() != old[["id", "label"]].values.tolist():
        return [
            f"Not paired: the test splits differ ({len(new)} images here, {len(old)} in {base}, or other ids or labels)."
        ]
    result = paired(new["correct"].to_numpy(), old["correct"].to_numpy(), resamples, seed)
    warning = [f"**{OPTIMISTIC}**", ""] if here == "best_test" else []
    return [
        *warning,
        f"**This revision \u2212 {base}: {result.difference:+.2f} points of test top-1** on the same {result.images} test images "
        f"(paired bootstrap 95% interval {result.low:+.2f} to {result.high:+.2f}; exact McNemar p = {result.p_value:.3g}; "
        f"{result.a_only} images right only here, {result.b_only} only in {base}; "
        f"smallest difference this test set detects: {result.mde:.1f} points).",
    ]


def _file_name(plot_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", plot_id.rsplit(".", 1)[0]).strip("-") + ".png"


def plots_sections(base: str, repo: Path, images: Path, link: str) -> tuple[list[str], list[str]]:
    """(the curves and per-class plots as markdown, the changed galleries as markdown); every plot
    also goes into images/plots.html (offline_page)."""
    import vl_convert  # noqa: PLC0415 (only the report draws vega-lite)

    with tempfile.TemporaryDirectory() as tmp:
        result = dvc("plots", "diff", base, "--json", "-o", tmp, repo=repo)
        if result.returncode != 0:
            return [f"`dvc plots diff {base}` failed: {result.stderr.strip()}"], []
        plots = _configured(json.loads(result.stdout).get("data", {}))
        write_text(images / PAGE, offline_page(plots, base))
        curves, galleries = [], []
        for plot_id, entries in sorted(plots.items()):
            vega = [entry for entry in entries if entry["type"] == "vega"]
            if plot_id.startswith(CURVES) and vega:
                name = _file_name(plot_id)
                write_bytes(images / name, vl_convert.vegalite_to_png(vega[0]["content"], scale=1.5))
                curves += [f"### {plot_id}", "", f"![{plot_id}]({link}/{name})", ""]
            elif plot_id.startswith(GALLERY):
                galleries += _gallery(plot_id, entries, base, images, link)
    return curves or ["No training-curve or per-class plot found."], galleries


PAGE = "plots.html"


def offline_page(plots: dict[str, list], base: str) -> str:
    """Every plot of `dvc plots diff --json` as one HTML page without scripts or network: vega-lite
    specs drawn to inline SVG with vl-convert, images inlined as data URIs."""
    import vl_convert  # noqa: PLC0415

    parts = []
    for plot_id, entries in sorted(plots.items()):
        parts.append(f"<h2>{html.escape(plot_id)}</h2>")
        for entry in entries:
            if entry["type"] == "vega":
                parts.append(f"<div>{vl_convert.vegalite_to_svg(entry['content'])}</div>")
            elif entry["type"] == "image":
                data = base64.b64encode(Path(entry["url"]).read_bytes()).decode()
                revision = html.escape(entry["revisions"][0])
                parts.append(
                    f'<figure><img alt="{html.escape(plot_id)}, {revision}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{revision}</figcaption></figure>"
                )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>plots: workspace against {html.escape(base)}</title></head><body>\n"
        f"<h1>Plots: the workspace against {html.escape(base)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def _configured(plots: dict[str, list]) -> dict[str, list]:
    """One entry per file: a file declared both as a stage's plot and in the top-level `plots:` of
    dvc.yaml comes twice, as `path` (default template) and `dvc.yaml::path` (the configured one)."""
    chosen: dict[str, list] = {}
    for plot_id, entries in plots.items():
        path = plot_id.split("::", 1)[-1]
        if plot_id != path or path not in chosen:
            chosen[path] = entries
    return chosen


def _gallery(plot_id: str, entries: list[dict], base: str, images: Path, link: str) -> list[str]:
    """Before and after of one gallery image, only if its bytes changed."""
    by_rev = {entry["revisions"][0]: Path(entry["url"]) for entry in entries if entry["type"] == "image"}
    new, old = by_rev.get("workspace"), by_rev.get(base)
    if new is not None and old is not None and new.read_bytes() == old.read_bytes():
        return []
    stem = _file_name(plot_id).removesuffix(".png")
    pictures = []
    for side, label, source in (("base", base, old), ("new", "this revision", new)):
        if source is None:
            pictures.append("(none)")
            continue
        shutil.copyfile(source, images / f"{stem}-{side}.png")
        pictures.append(f"![{plot_id}, {label}]({link}/{stem}-{side}.png)")
    return [f"### {plot_id}", "", f"| {base} | this revision |", "|---|---|", f"| {pictures[0]} | {pictures[1]} |", ""]


def report(
    base: str, out: str | Path = "reports/pr.md", repo: str | Path = ".", resamples: int = 10_000, seed: int = 0
) -> Path:
    """Write the pull request's report to `out` (and its images beside it); returns `out`."""
    repo, out = Path(repo).resolve(), Path(out)
    out = out if out.is_absolute() else repo / out
    base_sha = resolve(base, repo)
    images = out.with_suffix("")
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(parents=True)
    curves, galleries = plots_sections(base, repo, images, images.name)
    checkpoints = (checkpoint_at(None, repo), checkpoint_at(base_sha, repo))
    lines = [
        f"# Pipeline report: this revision against {base} ({base_sha[:7]})",
        "",
        "## Metrics",
        "",
        *checkpoint_section(*checkpoints, base),
        "",
        *metrics_section(base, repo),
        "",
        "## Test predictions, paired image by image",
        "",
        *paired_section(base, base_sha, repo, resamples, seed, checkpoints),
        "",
        "## Training curves and per-class accuracy",
        "",
        f"Every plot of both revisions, drawn for reading offline: [{images.name}/{PAGE}]({images.name}/{PAGE}).",
        "",
        *curves,
        "## Galleries",
        "",
        *(galleries or [f"No gallery differs from {base}.", ""]),
    ]
    write_text(out, "\n".join(lines))
    return out
