"""The look of every page hpcos writes (the run report, the outage plan): one stylesheet, no imports,
so a page that is not a performance report does not pay for matplotlib and scipy."""

CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #1a202c; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #cbd5e0; padding: 4px 8px; font-size: 13px; text-align: left; }
th { background: #edf2f7; }
td.passed { background: #c6f6d5; } td.failed, td.error { background: #fed7d7; }
td.skipped { background: #edf2f7; color: #718096; } td.absent { background: #fff; }
.regression { border-left: 4px solid #c53030; padding-left: 1em; margin-bottom: 1.5em; }
.regression.not.confirmed { border-left-color: #d69e2e; }
.verdict { font-size: 12px; background: #c53030; color: white; padding: 2px 6px; border-radius: 3px; }
.summary span { margin-right: 1.5em; font-weight: bold; }
"""
