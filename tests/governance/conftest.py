import pytest

from tests.support.people import FAST_HASHERS, create_people


@pytest.fixture
def people(db, settings):
    """See tests/support/people.py."""
    settings.PASSWORD_HASHERS = FAST_HASHERS
    return create_people()
