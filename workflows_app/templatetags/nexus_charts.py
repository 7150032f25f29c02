"""Chart helpers for the pages: plotly.js from local static files (the `plotly` package ships it;
settings.STATICFILES_DIRS serves it as vendor/plotly/), never a CDN.

    {% load nexus_charts %}{% plotly_js %}
"""
from django import template
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def plotly_js():
    return format_html('<script src="{}" charset="utf-8"></script>', static("vendor/plotly/plotly.min.js"))
