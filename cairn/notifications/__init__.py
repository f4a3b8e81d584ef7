"""Alerts: e-mail digests and webhooks."""
