"""Admin template helpers: links to the operations tools (Flower, beat schedules, dashboard)."""
from django import template

from workflows_app.admin import ops_links

register = template.Library()


@register.simple_tag
def nexus_ops_links():
    return ops_links()
