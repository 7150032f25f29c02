"""The kill switch exists from the start: its one row (pk=1, off), so the admin and the dashboard
can press it at once (before this, the admin first had to "Add kill switch")."""
from django.db import migrations


def create_row(apps, schema_editor):
    KillSwitch = apps.get_model("trading_app", "KillSwitch")
    KillSwitch.objects.get_or_create(pk=1, defaults={"active": False})


class Migration(migrations.Migration):
    dependencies = [("trading_app", "0005_stored_bars")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
