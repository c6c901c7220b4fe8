"""The Beam graph of news-ingest and one module per stage (extract, dedup, tag) plus the CLI."""
