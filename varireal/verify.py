"""`varireal verify`: are the bytes on this machine the ones the lock and the fetch stage recorded?

The lock itself: `data/models/lock.json` is what `dvc.lock` recorded for the models stage (its md5,
as DVC hashes it); a lock edited by hand, or restored from elsewhere, would otherwise vouch for
weights nobody pinned.

Models: every file of every role of `data/models/lock.json`, in the varireal cache (tiny builds)
or the Hugging Face cache (hub roles), hashed and compared with the lock's sha256. By default
every byte is read, ignoring the memo stages use to skip unchanged files: verify is what catches
bytes that changed under unchanged metadata (`trust_memo` makes it as fast as a stage's check).
Nothing is built or downloaded: a role not on this machine is reported as such, and a stage
builds or downloads it, verified, when it first loads it.

Datasets: `data/real/<dataset>/sources.json` records the sha256 of each downloaded archive (or
the user's own archive), not of the images unpacked from it. Verify re-hashes each archive still
on disk, checks that every image manifest.csv lists is present, and says what it could not
check: archives no longer kept, folder sources and generated data (no hashes recorded), and the
images' contents (DVC records those in dvc.lock: `dvc status fetch` compares them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from varireal.io import read_table
from varireal.models import weights
from varireal.models.hashes import FileCheck, check_files, on_disk, sha256_file
from varireal.models.lock import Lock
from varireal.models.spec import ModelSpec


@dataclass(frozen=True)
class RoleReport:
    role: str
    source: str
    model_dir: Path | None  # None: the role is not on this machine
    checks: list[FileCheck]
    repair: str = ""

    @property
    def status(self) -> str:
        if self.model_dir is None:
            return "not here"
        return "ok" if all(check.status == "ok" for check in self.checks) else "BAD"

    def count(self, status: str) -> int:
        return sum(check.status == status for check in self.checks)


@dataclass(frozen=True)
class InputReport:
    """One thing the fetch stage recorded about a dataset, and what re-checking it found."""

    dataset: str
    what: str
    status: str  # ok | BAD | not checked
    detail: str


@dataclass
class Report:
    lock: Path
    trust_memo: bool
    roles: list[RoleReport] = field(default_factory=list)
    inputs: list[InputReport] = field(default_factory=list)
    recorded: InputReport | None = None  # the lock against dvc.lock

    @property
    def ok(self) -> bool:
        checks = [*self.inputs, *([self.recorded] if self.recorded else [])]
        return all(r.status != "BAD" for r in self.roles) and all(i.status != "BAD" for i in checks)


def verify_lock_record(lock_path: Path, dvc_lock: Path) -> InputReport:
    """The lock's bytes against the md5 dvc.lock recorded for it (DVC hashes a file's raw bytes)."""
    try:
        name = lock_path.resolve().relative_to(dvc_lock.resolve().parent).as_posix()  # as dvc.lock names outputs
    except ValueError:
        return InputReport("models", lock_path.name, "not checked", f"{lock_path} is not in {dvc_lock}'s repository")
    try:
        stages = (yaml.safe_load(dvc_lock.read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError) as err:
        return InputReport("models", name, "not checked", f"{dvc_lock}: unreadable ({err})")
    recorded = [o.get("md5") for s in stages.values() for o in s.get("outs", []) if o.get("path") == name]
    if not recorded:
        return InputReport("models", name, "not checked", f"{dvc_lock} records no {name}: run `dvc repro models`")
    found = hashlib.md5(lock_path.read_bytes()).hexdigest()
    if found != recorded[0]:
        return InputReport(
            "models",
            name,
            "BAD",
            f"md5 {found}, but {dvc_lock} recorded {recorded[0]}: the lock was changed after `dvc repro models`; "
            f"restore it with `dvc checkout {name}` (or rerun `dvc repro models`)",
        )
    return InputReport("models", name, "ok", f"md5 {found}, as {dvc_lock} recorded")


def verify_role(role: str, record: Mapping[str, Any], trust_memo: bool) -> RoleReport:
    model_dir, patterns = weights.locate(role, record)
    if model_dir is None:
        return RoleReport(role, str(record.get("source")), None, [])
    checks = check_files(on_disk(model_dir, patterns), record["files"], trust_memo)
    return RoleReport(role, str(record.get("source")), model_dir, checks, _repair(role, record, model_dir, checks))


def _repair(role: str, record: Mapping[str, Any], model_dir: Path, checks: list[FileCheck]) -> str:
    names = [check.name for check in checks if check.status != "ok"]
    if not names:
        return ""
    if record.get("source") == "tiny":
        return f"Repair: the next stage that loads {role} rebuilds it from seed {record.get('seed')} (or delete {model_dir})"
    return weights.hub_repair(ModelSpec.model_validate(record["spec"]), model_dir, names)


def verify_archive(dataset: str, entry: Mapping[str, Any], downloads: Path) -> InputReport:
    """An archive sources.json names with its sha256: downloaded (`file`) or the user's own (`archive`)."""
    path = downloads / dataset / entry["file"] if "file" in entry else Path(entry["archive"])
    expected = entry["sha256"]
    pinned = entry.get("pinned")
    if pinned and pinned.startswith("sha256:") and pinned != f"sha256:{expected}":
        return InputReport(
            dataset, path.name, "BAD", f"sources.json records sha256 {expected}, but its pin is {pinned}"
        )
    if not path.is_file():
        return InputReport(
            dataset, path.name, "not checked", f"{path} is no longer on this machine (sources.json: sha256 {expected})"
        )
    found = sha256_file(path)
    if found != expected:
        return InputReport(dataset, path.name, "BAD", f"{path}: expected sha256 {expected}, found {found}")
    return InputReport(dataset, path.name, "ok", f"{path}: sha256 {expected}")


def verify_inputs(dataset: str, sources: Mapping[str, Any], downloads: Path) -> list[InputReport]:
    reports = []
    for entry in sources.get("inputs", []):
        if "sha256" in entry and ("file" in entry or "archive" in entry):
            reports.append(verify_archive(dataset, entry, downloads))
        elif "folder" in entry:
            reports.append(
                InputReport(
                    dataset,
                    Path(entry["folder"]).name,
                    "not checked",
                    f"folder source {entry['folder']}: no hashes recorded",
                )
            )
        else:
            made_by = ", ".join(f"{k} {v}" for k, v in entry.items() if isinstance(v, str))
            reports.append(InputReport(dataset, "generated", "not checked", f"{made_by}: no file hashes recorded"))
    return reports


def verify_images(dataset: str, folder: Path) -> InputReport:
    """Every image manifest.csv lists is present (their contents are DVC's to check: dvc.lock)."""
    listed = read_table(folder / "manifest.csv")["path"].tolist()
    missing = [path for path in listed if not (folder / path).is_file()]
    note = "contents not in sources.json: `dvc status fetch` checks them against dvc.lock"
    if missing:
        return InputReport(
            dataset,
            "images",
            "BAD",
            f"{len(missing)} of {len(listed)} listed in manifest.csv missing: {', '.join(missing[:5])}",
        )
    return InputReport(dataset, "images", "ok", f"all {len(listed)} listed in manifest.csv present; {note}")


def verify_dataset(folder: Path, downloads: Path) -> list[InputReport]:
    dataset = folder.name
    try:
        sources = json.loads((folder / "sources.json").read_text())
    except (OSError, ValueError) as err:
        return [
            InputReport(
                dataset,
                "sources.json",
                "BAD",
                f"{folder / 'sources.json'}: unreadable ({err}); rerun `dvc repro fetch`",
            )
        ]
    reports = verify_inputs(dataset, sources, downloads)
    if (folder / "manifest.csv").is_file():
        reports.append(verify_images(dataset, folder))
    else:
        reports.append(
            InputReport(dataset, "images", "BAD", f"{folder / 'manifest.csv'} missing: the fetch did not finish")
        )
    return reports


def verify(
    lock: Lock, real_root: Path, downloads: Path, trust_memo: bool = False, dvc_lock: Path | None = None
) -> Report:
    """dvc_lock: the dvc.lock the lock file is checked against (None: not checked)."""
    report = Report(lock.source, trust_memo)
    if dvc_lock is not None:
        report.recorded = verify_lock_record(lock.source, dvc_lock)
    report.roles = [verify_role(role, lock.record(role), trust_memo) for role in lock.roles]
    for folder in sorted(p.parent for p in real_root.glob("*/sources.json")):
        report.inputs += verify_dataset(folder, downloads)
    return report


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def render(report: Report, real_root: Path) -> str:
    how = "files the memo knows were not re-read" if report.trust_memo else "every byte read"
    lines = [f"models: {report.lock} ({how})"]
    if report.recorded is not None:
        lines.append(f"  the lock: {report.recorded.status}: {report.recorded.detail}")
    rows = [["role", "source", "files", "ok", "mismatch", "missing", "extra", "status"]]
    for r in report.roles:
        counts = [str(r.count(s)) for s in ("ok", "mismatch", "missing", "extra")] if r.model_dir else ["-"] * 4
        rows.append([r.role, r.source, str(len(r.checks)) if r.model_dir else "-", *counts, r.status])
    lines += _table(rows)
    bad = [(r, check) for r in report.roles for check in r.checks if check.status != "ok"]
    if bad:
        lines += ["", "bad files:"] + [f"  {r.role}: {r.model_dir}/{check.describe()}" for r, check in bad]
        lines += [f"{r.role}: {r.repair}" for r in report.roles if r.repair]
    absent = [r.role for r in report.roles if r.model_dir is None]
    if absent:
        lines.append(
            f"not on this machine (a stage builds or downloads them, verified, on first use): {', '.join(absent)}"
        )
    lines += ["", f"datasets: {real_root}/*/sources.json"]
    if report.inputs:
        lines += _table(
            [
                ["dataset", "input", "status", "detail"],
                *([i.dataset, i.what, i.status, i.detail] for i in report.inputs),
            ]
        )
    else:
        lines.append("  no fetched dataset (no sources.json) found")
    lines += ["", "all verified" if report.ok else "verification FAILED: see BAD above"]
    return "\n".join(lines)
