"""Searches that always go through the text indexes of 0007 (PostgreSQL only).

The planner costs a LIKE, or a to_tsvector, on one row as almost free: for a common enough
word it reads the whole table instead of the index, and then rechecks every description of
a job, or computes to_tsvector for every stored response (seconds). These functions run
the search with sequential scans disabled, so that the index answers, whatever the word.
"""

from django.db import migrations

JOBS = """
CREATE OR REPLACE FUNCTION agents_job_matching(pattern text) RETURNS SETOF bigint
LANGUAGE sql STABLE ROWS 1000 SET enable_seqscan = off AS $$
    SELECT id FROM agents_job
    WHERE UPPER(title) LIKE UPPER(pattern) OR UPPER(description) LIKE UPPER(pattern)
$$
"""
CALLS = """
CREATE OR REPLACE FUNCTION agents_llmcall_matching(query text) RETURNS SETOF bigint
LANGUAGE sql STABLE ROWS 1000 SET enable_seqscan = off AS $$
    SELECT id FROM agents_llmcall
    WHERE to_tsvector('simple'::regconfig, COALESCE(response, '') || ' ' || COALESCE(error, ''))
        @@ to_tsquery('simple', query)
$$
"""


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(JOBS)
        schema_editor.execute(CALLS)


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS agents_job_matching(text)")
        schema_editor.execute("DROP FUNCTION IF EXISTS agents_llmcall_matching(text)")


class Migration(migrations.Migration):
    dependencies = [("agents", "0007_text_search")]

    operations = [migrations.RunPython(create, drop)]
