"""Performance history, baselines, the regression decision, and the nightly report."""
