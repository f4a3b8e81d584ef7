"""Cairn: governance of tracking-event definitions and analytics of the events they describe."""

__version__ = "0.1.0"
