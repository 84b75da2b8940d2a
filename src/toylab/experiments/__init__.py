"""Reproducible studies: each file holds one study's config, its command and its expected result.

Import a study by name (``from toylab.experiments import tms``): Python loads that module alone.
Nothing is imported here eagerly, so that ``toylab tms`` does not pay for importing every other
study (SAEs, the myopia learners, their figures: seconds at start-up). ``STUDIES`` and
``reproduce`` come from :mod:`toylab.experiments.studies` on first use.
"""

import importlib

__all__ = ["STUDIES", "reproduce"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("toylab.experiments.studies"), name)
    raise AttributeError(f"module 'toylab.experiments' has no attribute {name!r}")
