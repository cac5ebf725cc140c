"""Overlay rebuilds: what ``hpcos build PKG --target T`` runs, one module per step.

source (get and verify the upstream SRPM) -> patching (site patches, Release, changelog; rules in
release) -> builders (mock or rpmbuild) -> failures (classify a failed build from its logs) ->
publish (overlay repository).  export writes the site patches for upstream; upstream_check tells
the polling job when upstream has moved on.  pipeline runs the steps in order; junit reports them.
"""
