"""The project card (opskit.yaml project:), reading run folders, evaluation gates, re-measuring."""
