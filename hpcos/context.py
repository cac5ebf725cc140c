"""Where a command finds the site: the specs directory and the store, from options or environment."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.specs import SpecSet, load_specs

DEFAULT_SPECS = "overlay_specs"


def specs_dir(args) -> Path:
    return Path(getattr(args, "specs", None) or os.environ.get("HPCOS_SPECS") or DEFAULT_SPECS)


def specs(args) -> SpecSet:
    return load_specs(specs_dir(args))


def store_root(args, spec_set: SpecSet | None = None) -> Path:
    """--store, then $HPCOS_STORE, then the site's store.root."""
    explicit = getattr(args, "store", None) or os.environ.get("HPCOS_STORE")
    if explicit:
        return Path(explicit)
    spec_set = spec_set or specs(args)
    return Path(spec_set.site.store.root)
