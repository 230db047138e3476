"""Completion callbacks: a signed JSON POST when a job ends (README "Webhooks")."""
