from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("created_by", models.CharField(max_length=64)),
                ("work_ms", models.PositiveIntegerField(default=0)),
                ("done_at", models.DateTimeField(null=True)),
                ("done_by", models.CharField(blank=True, max_length=64)),
                ("runs", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="Tick",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sent_at", models.FloatField()),
                ("beat_version", models.CharField(max_length=64)),
                ("run_by", models.CharField(max_length=64)),
                ("run_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name="MediaCheck",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=255)),
                ("size", models.IntegerField()),
                ("checked_by", models.CharField(max_length=64)),
                ("checked_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
