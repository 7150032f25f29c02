"""Admin template helpers: links to the operations tools (Flower, beat schedules, dashboard)."""
from django import template

register = template.Library()


@register.simple_tag
def nexus_ops_links():
    from workflows_app.admin import ops_links

    return ops_links()
