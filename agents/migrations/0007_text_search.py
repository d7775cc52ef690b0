"""Text search indexes, on PostgreSQL only (SQLite, standalone, scans: it holds little).

- Trigram GIN on UPPER(column), the very expression of Django's `icontains` there
  (`UPPER(col::text) LIKE UPPER(%s)`): board and admin searches keep their substring
  meaning and use the index (job titles and descriptions, subtask keys and types).
- Full-text GIN on a call's response + error: a trigram index would find the candidates,
  but rechecking each one's response, kilobytes long, costs more than the search may
  (0008's agents_llmcall_matching repeats this expression).
"""

from django.db import migrations

TRIGRAM = {
    "job_title_trgm": ("agents_job", "title"),
    "job_description_trgm": ("agents_job", "description"),
    "subtask_key_trgm": ("agents_subtask", "key"),
    "subtask_type_trgm": ("agents_subtask", "type"),
}
CALL_TEXT = "to_tsvector('simple'::regconfig, COALESCE(response, '') || ' ' || COALESCE(error, ''))"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, column) in TRIGRAM.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (UPPER({column}) gin_trgm_ops)"
        )
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS llmcall_text ON agents_llmcall USING gin ({CALL_TEXT})"
    )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in [*TRIGRAM, "llmcall_text"]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("agents", "0006_page_indexes")]

    operations = [migrations.RunPython(create, drop)]
