"""What each cluster is made of: node classes, hardware, software, roles; and how test and production differ."""
