"""Reproducible studies: each file holds one study's config, its command and its expected result."""

from toylab.experiments import intro, tms

STUDIES = {"intro": intro}

__all__ = ["STUDIES", "intro", "tms"]
