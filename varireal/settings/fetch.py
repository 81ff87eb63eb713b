"""The `fetch:` section of params.yaml: where each dataset comes from and what is kept.

Defaults point at the official archives. A checksum is pinned only where one is published
(the md5s and sha256s below come from torchvision's OxfordIIITPet and TensorFlow Datasets'
oxford_iiit_pet checksums.tsv and url_checksums/fgvc.txt); where none is, the field is null and
fetch records the sha256 it computed in <out_dir>/sources.json, so what ran is still on record.
An md5 can be forged and a non-http(s) url (ftp:, file:) escapes the checks of an HTTPS
download, so both are refused unless `fetch.allow_weak_sources` is true.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from varireal.settings.base import ProtocolSection, Strict, Study
from varireal.vocabulary import DATASETS

# The datasets that are downloaded or unpacked; `demo` is built from installed photos.
ARCHIVE_DATASETS = tuple(name for name in DATASETS if name != "demo")

CHECKSUM_PATTERN = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")

# Classes the demo can draw, each from photos bundled with scikit-image (CC0 or public
# domain, see varireal/datasets/demo.py); the order here is the class order.
DEMO_CLASSES = ("cat", "coffee cup", "rocket", "astronaut", "motorcycle")


class DemoParams(Strict):
    """The offline demo dataset: a few augmented views of bundled photos per class."""

    classes: list[str] = Field(
        default=["cat", "coffee cup", "rocket", "astronaut"],
        min_length=2,
        description=f"subset of {list(DEMO_CLASSES)}, in class-index order",
    )
    train_per_class: int = Field(default=8, ge=1)
    val_per_class: int = Field(default=4, ge=1)
    test_per_class: int = Field(default=4, ge=1)
    long_side: int = Field(default=160, ge=32, le=1024, description="long side (px) of every demo image")

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, classes: list[str]) -> list[str]:
        unknown = [name for name in classes if name not in DEMO_CLASSES]
        if unknown:
            raise ValueError(f"unknown demo class(es) {unknown}; allowed: {list(DEMO_CLASSES)}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"demo classes repeat: {classes}")
        return classes


class SourceParams(Strict):
    """Where one dataset's files come from. `archive` (a local file or folder) wins over `urls`."""

    urls: list[str] = Field(default_factory=list)
    checksums: list[str | None] = Field(
        default_factory=list,
        description="one per url: 'sha256:<hex>', 'md5:<hex>' (with fetch.allow_weak_sources) or null when none is published",
    )
    archive: str | None = Field(
        default=None,
        description="a local archive (.tar, .tar.gz, .tgz, .zip) or a folder holding archives or their unpacked contents",
    )

    @field_validator("checksums")
    @classmethod
    def _checksum_format(cls, checksums: list[str | None]) -> list[str | None]:
        for checksum in checksums:
            if checksum is not None and not CHECKSUM_PATTERN.match(checksum):
                raise ValueError(
                    f"checksum {checksum!r}: expected 'sha256:<64 hex>' or 'md5:<32 hex>' (lowercase) or null"
                )
        return checksums

    @model_validator(mode="after")
    def _one_checksum_per_url(self) -> SourceParams:
        if len(self.checksums) != len(self.urls):
            raise ValueError(
                f"{len(self.urls)} url(s) but {len(self.checksums)} checksum(s); give one per url (null where none is published)"
            )
        return self


PETS_URL = "https://thor.robots.ox.ac.uk/~vgg/data/pets"
# The reference's Pets train/val/test split (CoOp's), at the commit the paper's code is pinned to.
PETS_SPLIT_URL = (
    "https://raw.githubusercontent.com/Yiveen/SyntheticDataFeasibility/"
    "4cddb23acaedf30299e94fd6c7c867702b074d91/Finetune/artifacts/oxford_pets/split_coop.csv"
)
AIRCRAFT_URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"

DEFAULT_SOURCES: dict[str, SourceParams] = {
    # sha256s as published by TensorFlow Datasets (oxford_iiit_pet/checksums.tsv) for these urls.
    # The www.robots.ox.ac.uk/~vgg/data/pets/data/ copies have torchvision's md5s:
    # images 5c4f3ee8e5d25df40f4fd59a7f44e54c, annotations 95a8c909bbe2e81eed6a22bccdf3f68f.
    # The split file's sha256 is of the file at that commit (CRLF line endings, 287,420 bytes).
    "oxford_pets": SourceParams(
        urls=[f"{PETS_URL}/images.tar.gz", f"{PETS_URL}/annotations.tar.gz", PETS_SPLIT_URL],
        checksums=[
            "sha256:67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d",
            "sha256:52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91",
            "sha256:9edc56fea8bec95f8ccf55f661d7a9ec47525a9fbb6ccb9a574026381d04ea6f",
        ],
    ),
    # sha256 as published by TensorFlow Datasets (tensorflow/datasets, tensorflow_datasets/
    # url_checksums/fgvc.txt, for the http:// form of this url, 2770575360 bytes). The md5 on
    # the VGG page is reported not to match the file it serves; torchvision pins none.
    "fgvc_aircraft": SourceParams(
        urls=[AIRCRAFT_URL], checksums=["sha256:d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75"]
    ),
    # The original host (ai.stanford.edu/~jkrause/cars) is gone: users set `archive`.
    "stanford_cars": SourceParams(),
}


class FetchParams(Strict):
    min_side: int = Field(default=32, ge=1, description="images whose short side is smaller (px) are rejected")
    val_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="share of each class moved from train to val where the official split has no val",
    )
    workers: int = Field(default=8, ge=1, description="threads that decode images to check them")
    timeout_s: float = Field(default=60, gt=0, description="HTTP connect/read timeout")
    retries: int = Field(default=5, ge=0, description="download attempts after the first; each resumes the .part file")
    retry_wait_s: float = Field(default=5, ge=0, description="pause before a retry, doubled each time")
    demo: DemoParams = Field(default_factory=DemoParams)
    allow_weak_sources: bool = Field(
        default=False, description="accept 'md5:' checksums and urls other than http(s):// (ftp:, file:) in sources"
    )
    sources: dict[str, SourceParams] = Field(default_factory=lambda: dict(DEFAULT_SOURCES))

    @field_validator("sources")
    @classmethod
    def _known_sources_with_defaults(cls, sources: dict[str, SourceParams]) -> dict[str, SourceParams]:
        # params.yaml may override one dataset's source; the others keep their defaults.
        unknown = sorted(set(sources) - set(ARCHIVE_DATASETS))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; allowed: {list(ARCHIVE_DATASETS)}")
        return {**DEFAULT_SOURCES, **sources}

    @model_validator(mode="after")
    def _strong_sources(self) -> FetchParams:
        if self.allow_weak_sources:
            return self
        for dataset, source in self.sources.items():
            for url in source.urls:
                if urlparse(url).scheme.lower() not in ("http", "https"):
                    raise ValueError(
                        f"fetch.sources.{dataset}.urls: {url!r} is not an http(s) url; "
                        "use https, or set fetch.allow_weak_sources: true to accept it"
                    )
            for checksum in source.checksums:
                if checksum is not None and checksum.startswith("md5:"):
                    raise ValueError(
                        f"fetch.sources.{dataset}.checksums: {checksum!r}: an md5 does not prove a file was not "
                        "tampered with; pin its 'sha256:<hex>', or set fetch.allow_weak_sources: true to accept it"
                    )
        return self


class FetchStage(Study):
    """What the fetch stage reads."""

    protocol: ProtocolSection
    fetch: FetchParams
