"""The site's overlay specs: ``overlay_specs/site.yaml`` plus one YAML per overlay package.

This is the first link of the chain spec -> model -> job definition -> XML -> Jenkins, and the model
that the rebuild and repository steps read.  ``model`` holds the schema (pydantic models and the
``SpecSet``), ``loading`` reads a specs directory, ``checks`` holds what spans files.  Every check
reports file:line and field (``hpcos.core.sourced_yaml``).
"""

from hpcos.site.specs.loading import load_specs
from hpcos.site.specs.model import (
    PATCH_DIR,
    SITE_FILE,
    ConfigRepository,
    Harness,
    Package,
    Patch,
    SiteSpec,
    SpecSet,
    Target,
    Tracker,
)

__all__ = [
    "PATCH_DIR",
    "SITE_FILE",
    "ConfigRepository",
    "Harness",
    "Package",
    "Patch",
    "SiteSpec",
    "SpecSet",
    "Target",
    "Tracker",
    "load_specs",
]
