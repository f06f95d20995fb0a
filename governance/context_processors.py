"""The approval inbox's pending count, shown as a badge on every console page."""
from django.utils.functional import SimpleLazyObject


def inbox(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}

    def pending():
        from .escalations.selectors import decidable_by, escalations_query
        from .escalations.states import OPEN

        return decidable_by(user, escalations_query().filter(status__in=OPEN)).count()

    # Counted only when a page draws the badge.
    return {"dac_inbox_pending": SimpleLazyObject(pending)}
