"""The enriched-record and dead-letter schemas shared by every stage and by consumers."""
from schemas.article import (  # noqa: F401
    SCHEMA_VERSION,
    Article,
    DeadLetter,
    article_json_schema,
    dead_letter_json_schema,
    validate_article,
    validate_dead_letter,
)
