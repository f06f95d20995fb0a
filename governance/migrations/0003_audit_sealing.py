"""Audit sealing: audited transactions only insert; a sealer chains the rows later (see governance.audit).

Existing rows were chained in id order at insert time (under a global lock, so id order is chain
order) with a digest that does not cover seq. They get seq in id order and digest_version 1 and
keep their hashes, so `audit_verify` checks them exactly as before; new rows stay unsealed
(seq, digest_version, prev_hash, hash NULL) until the sealer chains them with digest_version 2.
"""
from django.db import migrations, models

NUMBER_EXISTING_ROWS = """
UPDATE governance_auditentry AS a
   SET seq = n.seq, digest_version = 1
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM governance_auditentry) AS n
 WHERE a.id = n.id
"""


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0002_escalations'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditentry',
            name='seq',
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='digest_version',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='prev_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='hash',
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        # Backwards: nothing to undo here (the columns go). Going back only works before anything
        # was written since: unsealed rows fail NOT NULL, rows sealed with digest 2 fail the old verify.
        migrations.RunSQL(NUMBER_EXISTING_ROWS, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'],
                               name='governance_audit_unsealed'),
        ),
        migrations.AddConstraint(
            model_name='auditentry',
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(('digest_version__isnull', True), ('hash__isnull', True), ('prev_hash__isnull', True),
                             ('seq__isnull', True)),
                    models.Q(('digest_version__isnull', False), ('hash__isnull', False), ('prev_hash__isnull', False),
                             ('seq__isnull', False)),
                    _connector='OR'),
                name='governance_audit_sealed_together'),
        ),
    ]
