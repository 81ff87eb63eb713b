"""The `reference` prompts source: the reference's value lists, colour table and aircraft categories,
downloaded at a pinned commit from a (local) HTTP server, sha256-checked, and read as literals only.

The files served here are written by us in the reference's format (VariReal/src/config/config_*.py,
generator/color_gen.py, generator/base.py) for a fake pets and a fake aircraft dataset."""

import hashlib
from pathlib import Path

import pytest

from varireal.attributes.item import Source
from varireal.edit.items import plan_edits
from varireal.prompts.build import build_attribute_lists, read_prompts, write_prompts
from varireal.prompts.reference import ReferenceFileError, Transfer
from varireal.settings.prompts import PromptsParams

COMMIT = "0123456789abcdef0123456789abcdef01234567"
QUICK = Transfer(timeout_s=5, retries=0, retry_wait_s=0)
PATHS = {
    "background": "VariReal/src/config/config_back.py",
    "color": "VariReal/src/config/config_color.py",
    "texture": "VariReal/src/config/config_texture.py",
    "color_table": "VariReal/src/generator/color_gen.py",
    "categories": "VariReal/src/generator/base.py",
}
FILES = {
    "background": """FEASIBLE_BACK = {
    'pets': ['(garden lawn)1.2: short green grass in sunlight', '(grey sofa)1.2: a fabric couch indoors'],
    'planes': ['(runway)1.2: grey tarmac with white markings'],
}

INFEASIBLE_BACK = {
    'pets': ['(deep space)1.2: black sky full of stars', '(deep space)1.2: black sky full of stars',
             '(lava lake)1.2: glowing rock' '(sun surface)1.2: plasma'],
    'planes': ['(ocean floor)1.2: sand under deep water'],
}
""",
    "color": """FEASIBLE_COLOR = {
    'pets': {'Abyssinian': ['(ruddy)1.3', '(ruddy)1.3', '(fawn)1.3'], 'American Bulldog': ['(white)1.3']},
    'planes': {'F-16A/B': ['(navy)1.0'], '737-300': ['(silver)1.3']},
}
# an alternative list, commented out as in the reference: 'pets': {...}
INFEASIBLE_COLOR = {
    'pets': {'Abyssinian': ['(neon pink)1.3'], 'American Bulldog': ['(electric lime)1.3']},
    'planes': {'F-16A/B': ['(deep pink)1.3'], '737-300': ['(storm slate)1.3']},
}
""",
    "texture": """FEASIBLE_TEXTURE = {'pets': {
    'Abyssinian': ['(ticked coat)1.3: warm brown fur with black ticking'],
    'American Bulldog': ['(short coat)1.3: smooth white fur', '(brindle coat)1.3: dark stripes on fawn'],
    },
    'planes': {'civilian': ['(glossy white)1.3: a polished white fuselage'],
               'military': ['(forest camo)1.3: green and brown blotches']},
}

INFEASIBLE_TEXTURE = {'pets': ['(tree bark)1.3: deep rough furrows'], 'planes': ['(fish scales)1.3: silvery rows']}
""",
    "color_table": """import numpy as np
from generator.base import BaseGenerator


class ColorGen(BaseGenerator):
    COLOR_PROMPTS = ["a test photo of [CLASS] in [COLOR]"]
    COLORS = {
        'ruddy': (170, 70, 50),
        'fawn': (1, 2, 3),
        'storm slate': (96, 110, 124),
        'fawn': (190, 150, 110),
    }

    def color(self, name):
        return np.array(self.COLORS[name])
""",
    "categories": """import os


class BaseGenerator:
    CATEGORY_MAP = {
        '737-300': 'civilian',
        'F-16A/B': 'military',
    }

    def __init__(self):
        os.makedirs('intermediate/', exist_ok=True)
""",
}


def serve(root: Path, http_server, texts: dict[str, str] | None = None):
    """Write the files under <root>/<commit>/<path>; return the server and each file's sha256."""
    texts = {**FILES, **(texts or {})}
    hashes = {}
    for role, path in PATHS.items():
        target = root / COMMIT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(texts[role], encoding="utf-8")
        hashes[role] = hashlib.sha256(target.read_bytes()).hexdigest()
    return http_server(root), hashes


def params(server, hashes, **overrides) -> PromptsParams:
    reference = {
        "url": server.url + "/{commit}/{path}",
        "commit": COMMIT,
        "files": {role: {"path": PATHS[role], "sha256": hashes[role]} for role in PATHS},
        "datasets": {"toy_pets": "pets", "toy_planes": "planes"},
    }
    settings = dict(
        source="reference",
        reference=reference,
        color_table="reference",
        value_draw="positions",
        min_values=18,
        max_values=50,
        max_attempts=1,
        seed=0,
        max_new_tokens=8,
        temperature=1.0,
        top_p=1.0,
    )
    return PromptsParams.model_validate({**settings, **overrides})


def build(dataset, classes, settings, downloads):
    return build_attribute_lists(dataset, classes, settings, None, {}, downloads=downloads, transfer=QUICK)


def test_the_reference_lists_are_downloaded_verified_and_kept_as_written(tmp_path, http_server):
    server, hashes = serve(tmp_path / "site", http_server)
    downloads = tmp_path / "downloads"
    document = build("toy_pets", ["Abyssinian", "american bulldog"], params(server, hashes), downloads)

    assert document["source"] == "reference" and document["llm"] is None and document["attempts"] == []
    files = document["reference"]["files"]
    assert document["reference"]["commit"] == COMMIT and set(files) == set(PATHS)
    assert files["color"] == {
        "path": PATHS["color"],
        "url": f"{server.url}/{COMMIT}/{PATHS['color']}",
        "sha256": hashes["color"],
    }
    assert (downloads / "reference" / COMMIT / PATHS["texture"]).read_text(encoding="utf-8") == FILES["texture"]

    lists = document["lists"]
    # values keep the Compel weight, the description is what follows ': ', repeats and lists of 1 stay;
    # implicitly joined strings stay one value, as Python reads them
    assert [(v["value"], v["description"]) for v in lists["background"]["feasible"]] == [
        ("(garden lawn)1.2", "short green grass in sunlight"),
        ("(grey sofa)1.2", "a fabric couch indoors"),
    ]
    assert [v["value"] for v in lists["background"]["infeasible"]] == [
        "(deep space)1.2",
        "(deep space)1.2",
        "(lava lake)1.2",
    ]
    assert lists["background"]["infeasible"][2]["description"] == "glowing rock(sun surface)1.2: plasma"
    # texture per class (keyed by our class names), infeasible per dataset
    assert {k: [v["value"] for v in vs] for k, vs in lists["texture"]["feasible"].items()} == {
        "Abyssinian": ["(ticked coat)1.3"],
        "american bulldog": ["(short coat)1.3", "(brindle coat)1.3"],
    }
    assert [v["value"] for v in lists["texture"]["infeasible"]] == ["(tree bark)1.3"]
    # colours per class (class names matched ignoring case), each with its RGB and where it came from
    assert [
        (v["value"], v["description"], v["rgb"], v["rgb_source"]) for v in lists["color"]["Abyssinian"]["feasible"]
    ] == [
        ("(ruddy)1.3", "", [170, 70, 50], "reference"),
        ("(ruddy)1.3", "", [170, 70, 50], "reference"),
        ("(fawn)1.3", "", [190, 150, 110], "reference"),
    ]  # a duplicated table key: the last wins, as in Python
    assert [(v["rgb"], v["rgb_source"]) for v in lists["color"]["american bulldog"]["feasible"]] == [
        ([255, 255, 255], "css4")
    ]
    assert [(v["rgb"], v["rgb_source"]) for v in lists["color"]["Abyssinian"]["infeasible"]] == [
        ([254, 1, 154], "xkcd")
    ]
    assert document["color_table"] == {"source": "reference", "names": 3, **files["color_table"]}
    assert document["categories"] == {} and document["value_draw"] == "positions"

    write_prompts(tmp_path / "toy_pets.json", document)
    read = read_prompts(tmp_path / "toy_pets.json")
    cat = [Source("c1", Path("c1.png"), "Abyssinian", 0, None)]
    items = plan_edits(cat, read, "color", "feasible", 5, 1, seed=0)
    assert [i.value for i in items][:3] == [
        "(ruddy)1.3",
        "(ruddy)1.3",
        "(fawn)1.3",
    ]  # a 3-long list: whole, then 2 draws
    assert {(i.rgb, i.rgb_source) for i in items if i.value == "(fawn)1.3"} == {((190, 150, 110), "reference")}


def test_aircraft_texture_lists_are_per_category_of_the_category_map(tmp_path, http_server):
    server, hashes = serve(tmp_path / "site", http_server)
    document = build("toy_planes", ["737-300", "F-16A/B"], params(server, hashes), tmp_path / "downloads")
    assert document["categories"] == {"737-300": "civilian", "F-16A/B": "military"}
    assert set(document["lists"]["texture"]["feasible"]) == {"civilian", "military"}
    assert document["lists"]["color"]["737-300"]["infeasible"][0]["rgb"] == [96, 110, 124]  # storm slate: the table's
    write_prompts(tmp_path / "planes.json", document)
    jet = [Source("j", Path("j.png"), "F-16A/B", 1, None)]
    items = plan_edits(jet, read_prompts(tmp_path / "planes.json"), "texture", "feasible", 2, 1, seed=0)
    assert [i.value for i in items] == ["(forest camo)1.3"] * 2


def test_a_wrong_sha256_names_the_file_the_url_and_both_hashes(tmp_path, http_server):
    server, hashes = serve(tmp_path / "site", http_server)
    wrong = {**hashes, "texture": "0" * 64}
    with pytest.raises(ReferenceFileError) as raised:
        build("toy_pets", ["Abyssinian"], params(server, wrong), tmp_path / "downloads")
    message = str(raised.value)
    assert PATHS["texture"] in message and f"{server.url}/{COMMIT}/{PATHS['texture']}" in message
    assert f"expected {'0' * 64}, got {hashes['texture']}" in message
    assert not (tmp_path / "downloads" / "reference" / COMMIT / PATHS["texture"]).exists()


@pytest.mark.parametrize(
    ("role", "text", "expected"),
    [
        (
            "background",
            "import os\nFEASIBLE_BACK = {{}}\nINFEASIBLE_BACK = {{}}\n",
            r"config_back.py .*:1: a Import statement",
        ),
        (
            "texture",
            "FEASIBLE_TEXTURE = dict(pets=open('{marker}', 'w'))\nINFEASIBLE_TEXTURE = {{}}\n",
            r"config_texture.py .*:1: FEASIBLE_TEXTURE is not a plain literal",
        ),
        ("color", "FEASIBLE_COLOR = {{}}\nopen('{marker}', 'w')\nINFEASIBLE_COLOR = {{}}\n", r":2: a Expr statement"),
        (
            "color_table",
            "class ColorGen:\n    COLORS = {{'x': tuple(open('{marker}', 'w'))}}\n",
            r"COLORS is not a plain literal",
        ),
        ("categories", "class BaseGenerator:\n    pass\n", r"base.py .*: no assignment of CATEGORY_MAP"),
    ],
)
def test_files_with_code_where_literals_belong_are_refused_and_never_run(tmp_path, http_server, role, text, expected):
    marker = tmp_path / "was-executed"
    server, hashes = serve(tmp_path / "site", http_server, {role: text.format(marker=marker)})
    with pytest.raises(ReferenceFileError, match=expected):
        build("toy_pets", ["Abyssinian"], params(server, hashes), tmp_path / "downloads")
    assert not marker.exists()


def test_a_class_without_a_list_and_an_unmapped_dataset_are_named(tmp_path, http_server):
    server, hashes = serve(tmp_path / "site", http_server)
    settings = params(server, hashes)
    with pytest.raises(
        ReferenceFileError,
        match=r"config_texture.py .*FEASIBLE_TEXTURE\['pets'\]: no list for class\(es\) 'Abyssinain'",
    ):
        build("toy_pets", ["Abyssinain", "American Bulldog"], settings, tmp_path / "downloads")
    with pytest.raises(ValueError, match="prompts.reference.datasets has no key for dataset 'toy_cars'"):
        build("toy_cars", ["Ford"], settings, tmp_path / "downloads")


def test_colour_lists_name_the_class_missing_from_them(tmp_path, http_server):
    texts = {"texture": FILES["texture"].replace("'American Bulldog': [", "'Boxer': [")}
    server, hashes = serve(tmp_path / "site", http_server, texts)
    with pytest.raises(
        ReferenceFileError, match=r"config_color.py .*: FEASIBLE_COLOR\['pets'\]: no list for 1 class\(es\): Boxer$"
    ):
        build("toy_pets", ["Abyssinian", "Boxer"], params(server, hashes), tmp_path / "downloads")


def test_a_colour_that_no_table_names_stops_the_stage_naming_value_and_list(tmp_path, http_server):
    texts = {"color": FILES["color"].replace("(white)1.3", "(brindle-ish)1.3")}
    server, hashes = serve(tmp_path / "site", http_server, texts)
    with pytest.raises(ValueError, match=r"list 'color/American Bulldog/feasible': colour value '\(brindle-ish\)1.3'"):
        build("toy_pets", ["Abyssinian", "American Bulldog"], params(server, hashes), tmp_path / "downloads")
    # without the reference's table, its own names fail too (no invented colour), all reported at once
    with pytest.raises(
        ValueError,
        match=r"(?s)2 colour value\(s\) have no RGB.*'\(ruddy\)1.3' \(name 'ruddy'\) is neither in the colour table \(none given\)",
    ):
        build("toy_pets", ["Abyssinian"], params(server, hashes, color_table=None), tmp_path / "downloads")


SUBSET_NAMES = """import random

SUBSET_NAMES = {
    'pets': ['Abyssinian', 'American Bulldog'],
    'planes': ['F-16A/B', '737-300'],
}


def unused():
    return random.random()
"""


def test_the_references_class_names_are_read_and_matched_to_ours(tmp_path, http_server):
    """Its SUBSET_NAMES (Finetune/classify/util_data.py) is how its pipeline named each class to the VLM:
    the document maps our names to them, ignoring case and spacing; a class it does not name fails."""
    root = tmp_path / "site"
    server, hashes = serve(root, http_server)
    names = root / COMMIT / "Finetune/classify/util_data.py"
    names.parent.mkdir(parents=True, exist_ok=True)
    names.write_text(SUBSET_NAMES, encoding="utf-8")
    settings = params(server, hashes)
    files = {
        **{role: dict(entry) for role, entry in settings.reference.model_dump()["files"].items()},
        "class_names": {
            "path": "Finetune/classify/util_data.py",
            "sha256": hashlib.sha256(names.read_bytes()).hexdigest(),
        },
    }
    settings = params(server, hashes, reference={**settings.reference.model_dump(), "files": files})
    document = build("toy_pets", ["Abyssinian", "american bulldog"], settings, tmp_path / "downloads")
    assert document["class_names"] == {"Abyssinian": "Abyssinian", "american bulldog": "American Bulldog"}
    with pytest.raises(ReferenceFileError, match=r"SUBSET_NAMES\['pets'\]: no list for 1 class\(es\): beagle"):
        build("toy_pets", ["Abyssinian", "american bulldog", "beagle"], settings, tmp_path / "downloads")
