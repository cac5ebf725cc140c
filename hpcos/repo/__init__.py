"""Repository lifecycle: mirror upstream into snapshots, publish overlays, promote through environments.

Storage model (see docs/repositories.md):

- ``content/``: every RPM once, named by its sha256 (content_store);
- ``snapshots/<id>/<repo>/``: immutable snapshots (snapshots).  A repository entry is either a real
  directory (RPMs hard-linked from the content store, plus createrepo_c metadata) or a symlink to the
  same entry of an older snapshot, so composing an environment writes one link per repository;
- ``environments/<env>``: a symlink to a snapshot, switched by rename, with an append-only record
  (environments).
"""
