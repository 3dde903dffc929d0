from django.db import migrations, models


class Migration(migrations.Migration):
    """Sandboxes may live on several servers: each row names its own (empty: `main`)."""

    dependencies = [
        ("playground", "0010_operator"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandbox",
            name="server",
            field=models.CharField(blank=True, db_index=True, default="", max_length=63),
        ),
    ]
