from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("playground", "0003_runallowance"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandbox",
            name="client",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="sandbox",
            name="uses",
            field=models.PositiveIntegerField(default=1),
        ),
    ]
