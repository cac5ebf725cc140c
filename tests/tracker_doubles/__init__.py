"""HTTP doubles of the trackers that cannot run here (Bugzilla, Jira, GitHub, GitLab, Redmine)."""
