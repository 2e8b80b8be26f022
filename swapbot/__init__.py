"""swapbot: swap Heroku Connect mappings to a new schema with minutes of downtime, from Slack."""

__version__ = "0.1.0"
