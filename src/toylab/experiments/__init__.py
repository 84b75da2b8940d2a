"""Reproducible studies: each file holds one study's config, its command and its expected result."""

from toylab.experiments import intro, scurves_paper, tms

STUDIES = {"intro": intro, "scurves": scurves_paper}

__all__ = ["STUDIES", "intro", "scurves_paper", "tms"]
