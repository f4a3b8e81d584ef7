"""Analyses over ClickHouse: one small query object per analysis (pydantic input, a pure
``to_sql()`` returning SQL text plus bound parameters, a thin ``run()``), plus the shared
filter compiler, guard rails and the short-TTL query cache."""
