"""Broker accounts per owner (issue 11): PaperAccount becomes BrokerAccount with a broker, a kind,
owners, a per-user default, a per-account kill switch and per-account limits.

Data: the existing accounts become house accounts (the operator's, visible to staff only: owner-less
workflows trade there); orders recorded from Alpaca without an account get the ``alpaca`` house row.
"""
import django.db.models.deletion
from decimal import Decimal

from django.conf import settings
from django.db import migrations, models


def existing_rows(apps, schema_editor):
    Account = apps.get_model("trading_app", "BrokerAccount")
    Order = apps.get_model("trading_app", "Order")
    Account.objects.all().update(kind="house", broker="paper")
    if Order.objects.filter(broker="alpaca", account__isnull=True).exists():
        alpaca, _ = Account.objects.get_or_create(name="alpaca", defaults={
            "broker": "alpaca", "kind": "house", "starting_cash": Decimal("0"), "cash": Decimal("0")})
        Order.objects.filter(broker="alpaca", account__isnull=True).update(account=alpaca)


class Migration(migrations.Migration):

    dependencies = [
        ("trading_app", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameModel("PaperAccount", "BrokerAccount"),
        migrations.AddField("brokeraccount", "broker", models.CharField(default="paper", max_length=16)),
        migrations.AddField("brokeraccount", "kind", models.CharField(
            choices=[("user", "User"), ("demo", "Demo"), ("house", "House")], default="house", max_length=8)),
        migrations.AddField("brokeraccount", "owners", models.ManyToManyField(
            blank=True, related_name="broker_accounts", to=settings.AUTH_USER_MODEL)),
        migrations.AddField("brokeraccount", "default_for", models.OneToOneField(
            blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
            related_name="default_broker_account", to=settings.AUTH_USER_MODEL)),
        migrations.AddField("brokeraccount", "halted", models.BooleanField(
            default=False, help_text="this account's kill switch")),
        migrations.AddField("brokeraccount", "halt_reason", models.CharField(blank=True, default="", max_length=300)),
        migrations.AddField("brokeraccount", "max_position_pct", models.FloatField(
            blank=True, null=True, help_text="tightens NEXUS_MAX_POSITION_PCT")),
        migrations.AddField("brokeraccount", "max_gross_exposure", models.FloatField(
            blank=True, null=True, help_text="tightens NEXUS_MAX_GROSS_EXPOSURE")),
        migrations.RunPython(existing_rows, migrations.RunPython.noop),
    ]
