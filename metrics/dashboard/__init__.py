"""The operator's dashboard (`/dashboard/`, staff login): overview, per-workflow pages and a live
instance view. Pages render once; their charts and the instance's DAG refresh by short polling of
small JSON views beside them (no server-sent events: a request thread per open page is too dear
for Django's development server and for the sync workers it runs on)."""
