"""The cast of the governance tests: alice and bob approve (group tech_lead), carol is in
finance, dave may decide any escalation, erin is staff in no group."""
from django.contrib.auth.models import Group, Permission, User

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # users are made per test; logins stay real


def create_people():
    tech_lead, finance = Group.objects.create(name="tech_lead"), Group.objects.create(name="finance")
    users = {}
    for name, groups in (("alice", [tech_lead]), ("bob", [tech_lead]), ("carol", [finance]), ("dave", []),
                         ("erin", [])):
        users[name] = User.objects.create_user(name, password=f"pw-{name}-123", is_staff=True)
        users[name].groups.add(*groups)
    users["dave"].user_permissions.add(Permission.objects.get(codename="decide_any_escalation"))
    return users
