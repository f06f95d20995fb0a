"""The Celery app: Redis broker and result backend, configured from Django settings (CELERY_*)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dacproject.settings")

app = Celery("dacproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
