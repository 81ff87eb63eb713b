"""Stage `models`: every model role as a local directory, and a lock of what was used."""

from pathlib import Path

from stages import run_stage
from varireal.models.lock import resolve_models
from varireal.params import load_params


def main() -> None:
    params = load_params()
    lock = resolve_models(params.profile, params.models.for_profile(params.profile), Path("data/models"))
    for role, entry in sorted(lock["roles"].items()):
        print(f"{role}: {entry['class_name']} from {entry['source']} ({entry.get('repo_id') or 'seed ' + str(entry.get('seed'))})")


if __name__ == "__main__":
    run_stage(main)
