"""A test-only provider: exercises the core over real HTTP without any vendor."""
