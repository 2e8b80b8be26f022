"""The swap procedure: plan, steps, engine, and the Redis store they keep their state in."""
