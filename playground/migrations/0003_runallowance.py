from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("playground", "0002_run_history"),
    ]

    operations = [
        migrations.CreateModel(
            name="RunAllowance",
            fields=[
                ("key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("tokens", models.FloatField()),
                ("allowed", models.BooleanField()),
                ("updated_at", models.DateTimeField(db_index=True)),
            ],
        ),
    ]
