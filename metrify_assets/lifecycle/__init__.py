"""The data lifecycle: hot PostgreSQL -> warm / cold / archive lake tiers, retention, legal holds, restore."""
