"""Minimal edits of real training images: one attribute (background, color, texture) at a time.

`plan` says what to edit (slots, values, seeds), `methods` edits a batch with the pipelines
passed in (`Editors`), `run` drives a whole edit set with resume, `store` keeps it on disk.
"""
