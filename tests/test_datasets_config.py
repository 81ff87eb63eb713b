"""The `fetch:` section: official sources by default, and errors that say what is allowed."""

import pytest
from pydantic import ValidationError

from varireal.settings.fetch import FetchParams


def test_defaults_point_at_the_official_archives():
    params = FetchParams()
    pets, aircraft, cars = (params.sources[name] for name in ("oxford_pets", "fgvc_aircraft", "stanford_cars"))
    assert [url.rsplit("/", 1)[1] for url in pets.urls] == ["images.tar.gz", "annotations.tar.gz", "split_coop.csv"]
    assert all(checksum.startswith("sha256:") for checksum in pets.checksums)
    assert aircraft.urls[0].endswith("/fgvc-aircraft-2013b.tar.gz")
    assert cars.urls == [] and cars.archive is None
    assert params.demo.classes == ["cat", "coffee cup", "rocket", "astronaut"]


def test_overriding_one_source_keeps_the_others():
    params = FetchParams.model_validate({"sources": {"stanford_cars": {"archive": "~/cars.tgz"}}})
    assert params.sources["stanford_cars"].archive == "~/cars.tgz"
    assert params.sources["oxford_pets"] == FetchParams().sources["oxford_pets"]


@pytest.mark.parametrize(
    ("fetch", "fragment"),
    [
        ({"sources": {"imagenet": {}}}, "unknown source(s) ['imagenet']"),
        ({"sources": {"oxford_pets": {"urls": ["http://x/a.tgz"], "checksums": []}}}, "1 url(s) but 0 checksum(s)"),
        ({"sources": {"oxford_pets": {"urls": ["http://x/a.tgz"], "checksums": ["abc"]}}}, "'sha256:<64 hex>'"),
        ({"sources": {"oxford_pets": {"url": "http://x/a.tgz"}}}, "Extra inputs are not permitted"),
        ({"demo": {"classes": ["cat", "unicorn"]}}, "unknown demo class(es) ['unicorn']"),
        ({"val_fraction": 1.5}, "less than 1"),
        ({"min_side": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(fetch, fragment):
    with pytest.raises(ValidationError) as caught:
        FetchParams.model_validate(fetch)
    assert fragment in str(caught.value)
