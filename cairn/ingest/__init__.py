"""Ingestion: the message bus port and adapters, the gateway, validation and the ClickHouse sink."""
