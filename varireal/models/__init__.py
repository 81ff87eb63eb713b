"""Model roles (detector, segmenter, llm, ...): tiny seeded builds or pinned hub revisions, one loader each.

- spec.py   ModelSpec / ModelsParams: the `models:` section of params.yaml
- roles.py  ROLES: per role its tiny builder, loader, directory check and hub files
- tiny.py   tiny random-weight models of the paper's classes, in the real on-disk formats
- hub.py    pinned downloads, and MissingWeightsError saying how to provide the files
- load.py   load_detector / load_segmenter / load_llm (the same code for tiny and real weights)
- lock.py   resolve_models (build/download every role, write lock.json) and read_lock
"""

from varireal.models.errors import (
    LockError,
    MissingWeightsError,
    ModelDirError,
    ModelError,
)
from varireal.models.spec import ModelsParams, ModelSpec

__all__ = ["LockError", "MissingWeightsError", "ModelDirError", "ModelError", "ModelSpec", "ModelsParams"]
