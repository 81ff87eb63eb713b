"""Errors of the models package: each message names the role, the directory or repo, and a fix."""

from __future__ import annotations


class ModelError(Exception):
    """Base class: something about a model role is wrong or unavailable."""


class ModelDirError(ModelError, FileNotFoundError):
    """A role's local directory is missing, incomplete, or does not load."""


class MissingWeightsError(ModelError):
    """A hub role's weights are not on disk and could not be downloaded (no network, offline mode, ...)."""


class LockError(ModelError, ValueError):
    """lock.json is missing, unreadable, or lacks a role a stage asks for."""


class WeightsMismatchError(LockError):
    """A role's files on this machine are not the bytes the lock records (a sha256 differs, a file is missing or extra)."""


# What diffusers, transformers and safetensors raise for files that are there but do not load (a wrong
# class, shape or format): caught by the loaders and re-raised as ModelDirError naming the role and file.
LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)
