"""The console's admin site, whose `admin.py` modules are imported when the console is first used.

Django's default AdminConfig imports every app's `admin.py` in `ready()`, i.e. in every process
that calls `django.setup()`. Ours pull in the whole engine, the notification channels and more
(about a third of `manage.py` start-up), which `dac status`, a worker or beat never need. This
site imports them on first use instead: when its URLs are built (the URLconf, i.e. the web
process), its checks run, or anything asks what is registered. Behaviour is otherwise Django's.
"""
import threading
from contextlib import contextmanager

from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.sites import AdminSite


class LazyAdminSite(AdminSite):
    """`admin.site`: registrations are read through `_registry`, which autodiscovers first.

    Registering (`register`, `unregister`) and discovery itself never trigger discovery, so an
    `admin.py` imported on its own (a test importing a ModelAdmin class) registers as usual.
    """

    def __init__(self, name="admin"):
        self._discovered = False
        self._lock = threading.RLock()
        self._local = threading.local()  # depth of register/unregister/discovery in this thread
        super().__init__(name)

    @property
    def _registry(self):
        if not self._discovered and not getattr(self._local, "quiet", 0):
            self.discover()
        return self._models

    @_registry.setter
    def _registry(self, value):
        self._models = value

    def discover(self):
        """Import every installed app's `admin.py` once (Django's `admin.autodiscover()`)."""
        from django.contrib.admin import autodiscover

        with self._lock:
            if self._discovered:
                return
            with self._quiet():
                autodiscover()
            self._discovered = True

    def register(self, model_or_iterable, admin_class=None, **options):
        with self._quiet():
            super().register(model_or_iterable, admin_class, **options)

    def unregister(self, model_or_iterable):
        with self._quiet():
            super().unregister(model_or_iterable)

    @contextmanager
    def _quiet(self):
        self._local.quiet = getattr(self._local, "quiet", 0) + 1
        try:
            yield
        finally:
            self._local.quiet -= 1


class LazyAdminConfig(SimpleAdminConfig):
    """`django.contrib.admin` (label `admin`) with `LazyAdminSite` as `admin.site` and no eager autodiscovery."""

    default_site = "dacproject.admin_site.LazyAdminSite"

    def ready(self):
        super().ready()  # registers the admin system checks; Django's AdminConfig would also autodiscover here
