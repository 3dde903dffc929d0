from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("playground", "0008_snapshot"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="prepare_seed",
            field=models.JSONField(default=dict),
        ),
        migrations.AddField(
            model_name="room",
            name="prepare_worker",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AddField(
            model_name="room",
            name="prepare_beat",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="snapshot",
            name="kind",
            field=models.CharField(
                choices=[("run", "run"), ("compare", "compare"), ("sweep", "sweep")], default="run", max_length=8
            ),
        ),
    ]
