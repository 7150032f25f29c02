"""Dashboard, /metrics and /mcp routes (filled by the UI/MCP face)."""
urlpatterns: list = []
