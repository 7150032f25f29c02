"""REST API routes under /api/v1/ (filled by the REST face)."""
urlpatterns: list = []
