"""The production outage: the plan (changes, tasks, durations, risks, rollback), the rollout, the wiki page."""
