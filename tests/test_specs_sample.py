"""The shipped sample site must always load: it is what the README's first command renders."""

from jobs.specs import load_specs


def test_sample_site_loads(repo_root):
    spec_set = load_specs(repo_root / "overlay_specs")
    assert spec_set.site.overlays["kernel-overlay"].fastpath
    assert "openmpi" in spec_set.packages
    # Overlaid packages leave the base mirror automatically.
    assert spec_set.is_excluded("appstream", "openmpi-devel")
    assert not spec_set.is_excluded("appstream", "bash")
