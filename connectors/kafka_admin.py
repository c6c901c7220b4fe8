"""Topic administration and the broker pre-flight check run before a job starts."""
from __future__ import annotations

from typing import Any, Mapping


class KafkaUnavailable(RuntimeError):
    """The configured brokers cannot be reached or a needed topic is missing."""


def _client_options(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    opts = {k: v for k, v in (kafka_config.get("producer") or {}).items()
            if k.startswith(("security_", "sasl_", "ssl_")) or k in ("client_id",)}
    opts["bootstrap_servers"] = kafka_config["bootstrap_servers"]
    opts["request_timeout_ms"] = int(kafka_config.get("connect_timeout_ms", 10000))
    return opts


def ensure_topics(kafka_config: Mapping[str, Any], topics: list[str]) -> list[str]:
    """Check the brokers answer and the topics exist; create missing ones when configured.

    Returns the topics it created. Raises KafkaUnavailable with a precise message otherwise.
    """
    from kafka import errors
    from kafka.admin import KafkaAdminClient, NewTopic

    servers = kafka_config["bootstrap_servers"]
    try:
        admin = KafkaAdminClient(**_client_options(kafka_config))
    except errors.NoBrokersAvailable as exc:
        raise KafkaUnavailable(f"no Kafka broker reachable at {servers}") from exc
    except errors.KafkaError as exc:
        raise KafkaUnavailable(f"cannot talk to Kafka at {servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return []
        if not kafka_config.get("create_topics", True):
            raise KafkaUnavailable(f"topic(s) {', '.join(missing)} missing on {servers} and create_topics is off")
        topic_configs = {str(k): str(v) for k, v in (kafka_config.get("topic_config") or {}).items()}
        new = [NewTopic(t, num_partitions=int(kafka_config.get("partitions", 3)),
                        replication_factor=int(kafka_config.get("replication_factor", 1)),
                        topic_configs=topic_configs or None) for t in missing]
        try:
            admin.create_topics(new, timeout_ms=15000)
        except errors.TopicAlreadyExistsError:
            pass
        return missing
    finally:
        admin.close()
