"""A local stand-in for Heroku Connect and the Heroku Platform API, backed by real PostgreSQL."""
