"""The Telegram adapter: long-polls the Bot API and talks to the service only over HTTP."""
