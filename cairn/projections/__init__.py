"""Read models in PostgreSQL, projected from the event store."""
