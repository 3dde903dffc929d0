from django.db import migrations, models


class Migration(migrations.Migration):
    """A room may be made for one PostgreSQL version (empty: the default, as before)."""

    dependencies = [
        ("playground", "0011_sandbox_server"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="version",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
    ]
