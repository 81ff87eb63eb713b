"""Stage `models`: lock every model role (class, revision, sha256 of each file) into data/models/lock.json.

The weights themselves go to the machine's caches (HF_HUB_CACHE for hub roles, VARIREAL_CACHE
for tiny builds), never into the workspace: see varireal.models.weights.
"""

from stages import run_stage
from varireal import workspace
from varireal.models.hashes import cache_root
from varireal.models.hub import hub_cache
from varireal.models.lock import resolve_models
from varireal.params import load_params
from varireal.settings.models import ModelsStage


def main() -> None:
    params = load_params(ModelsStage)
    lock = resolve_models(params.profile, params.models.for_profile(params.profile), workspace.MODELS_LOCK.parent)
    for role, entry in sorted(lock["roles"].items()):
        origin = f"{entry['repo_id']}@{entry['revision'][:12]}" if entry["source"] == "hub" else f"seed {entry['seed']}"
        print(f"{role}: {entry['class_name']} ({entry['source']}, {origin}, {entry['bytes'] / 1e6:.1f} MB)")
    print(f"weights: hub roles in {hub_cache()}, tiny builds in {cache_root() / 'tiny'}")


if __name__ == "__main__":
    run_stage(main)
