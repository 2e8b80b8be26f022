"""The Slack front end: Bolt app, Block Kit rendering, channel notifier, and a local Slack stand-in."""
