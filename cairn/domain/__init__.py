"""Event-sourced domain: aggregates, events and commands. Imports no I/O package."""
