"""The edges of the pipeline: the safe HTTP fetcher, feed polling and parsing, the Kafka sink."""
