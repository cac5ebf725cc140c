"""RPM files, as both the build side (hpcos.rebuild) and the repository side (hpcos.repo) handle them.

rpmtool runs the rpm tools (timeouts, logs, one-line errors) and reads headers; evr orders versions
by rpm's rule; signing signs outgoing packages and metadata with the site key and verifies incoming
ones; content_store keeps every RPM once by its sha256 and says which file names a snapshot already
holds with other bytes (builds are immutable).  It sits below rebuild and repo so that neither
imports the other.
"""
