"""The edit stage: minimal edits of real training images, one attribute (varireal.attributes) at a time.

`items` says what to edit (slots, values, seeds), `make` makes one batch of candidates with the
attribute's method and the pipelines passed in, `rounds` makes a shard's candidates in early-stop
rounds, `edit_set` drives a whole edit set with resume, `store` is its manifest and shard plan on
disk, `by_hand` edits one image from the command line.
"""
