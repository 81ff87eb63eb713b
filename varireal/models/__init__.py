"""Model roles (detector, segmenter, llm, ...): tiny seeded builds or pinned hub revisions, one loader each.

- spec.py        ModelSpec and ROLE_FIELDS: what params.yaml may say about each role (imports nothing of this package)
- role_kind.py   RoleKind: what a role is made of (builder, loader, check, class name, hub files)
- roles.py       ROLES, the registry of builders and loaders (the `models:` schema is varireal.settings.models)
- mask_prompt_roles.py  the detector, segmenter and llm roles (masks and prompts stages); their builders in tiny.py, loaders in load.py
- segmenter.py   sam2.json: the allow-list of what it may tell sam2's hydra, its reader and writer
- diffusion.py   the diffusion roles (diffusion_layout / _tiny / _checks / _load.py, ip_adapter.py)
- vlm.py, clip.py  the filter's VLM and the classifier's CLIP, each builder, check and loader in one file
- hub.py, weights.py, lock.py  pinned downloads; resolve_models (build/download every role, lock.json), read_lock

The modules import each other in one direction only (tests/test_import_graph.py checks it); this
file imports nothing, so importing any submodule stays cheap.
"""
