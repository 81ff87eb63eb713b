"""The real images of each dataset in one layout (see layout.py), built by the `fetch` stage.

    manifest = fetch_dataset(  # varireal.datasets.fetch
        "oxford_pets", Path("data/real/oxford_pets"), params.fetch, Path("data/downloads"))

`demo` needs no network; the others download the official archives (or unpack the user's,
`fetch.sources.<dataset>.archive`) into download_dir, which later runs reuse.
"""
