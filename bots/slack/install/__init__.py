"""Slack distribution: "Add to Slack" in many workspaces (bolt's OAuth flow) on threadkeeper's own database,
the tokens sealed at rest, and each workspace's own token for every Web API call made on its behalf."""
