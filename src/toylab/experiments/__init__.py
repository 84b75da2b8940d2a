"""Reproducible studies: each file holds one study's config, its command and its expected result."""

from toylab.experiments import capability, intro, scurves_paper, tms
from toylab.experiments.studies import STUDIES, reproduce

__all__ = ["STUDIES", "capability", "intro", "reproduce", "scurves_paper", "tms"]
