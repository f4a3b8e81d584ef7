"""ClickHouse: the analytics store. One async port, two adapters (embedded chDB, aiochclient)."""
