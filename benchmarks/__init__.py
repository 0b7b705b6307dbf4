"""Every evaluation and benchmark of agentkit, with one report schema (report.py) and one table printer."""
