"""A turn's tools: MCP and built-in tools around each call (progress line, trail), and approvals with the
card that shows a call's arguments.
"""
