"""Minimal edits of real training images: one attribute (background, color, texture) at a time.

`items` says what to edit (slots, values, seeds), `methods` edits a batch with the pipelines
passed in (`Editors`), `rounds` makes a shard's candidates in early-stop rounds, `edit_set`
drives a whole edit set with resume, `store` is its manifest and shard plan on disk, `by_hand`
edits one image from the command line.
"""
