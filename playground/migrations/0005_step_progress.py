import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("playground", "0004_sandbox_client_uses"),
    ]

    operations = [
        migrations.CreateModel(
            name="StepProgress",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("learner", models.CharField(max_length=64)),
                ("track", models.CharField(max_length=100)),
                ("step", models.PositiveSmallIntegerField()),
                ("done", models.BooleanField(default=False)),
                ("first_right", models.BooleanField(null=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("outcome", models.JSONField(default=dict)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="playground.run",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("learner", "track", "step"), name="one_progress_row_per_step")
                ],
            },
        ),
    ]
