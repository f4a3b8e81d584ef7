"""The GraphQL API (strawberry on aiohttp): thin types over read models, one error vocabulary."""
