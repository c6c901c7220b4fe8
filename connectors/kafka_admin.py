"""Topic administration and the broker pre-flight check run before a job starts.

``ensure_topics`` answers, within ``kafka.connect_timeout_ms`` (default 10 s), whether the
brokers are reachable and the job's topics exist, and creates missing topics when
``kafka.create_topics`` is on (the default), with the configured partitions, replication factor
and topic configs. Per-topic settings go under ``kafka.topic_overrides``, keyed by the topic's
role (``articles``, ``duplicates``, ``dead_letter``) or by its name::

    kafka:
      partitions: 3
      replication_factor: 1
      topic_config: {compression.type: producer}
      topic_overrides:
        dead_letter: {partitions: 1, config: {retention.ms: "1209600000"}}

Connection settings (``security_protocol``, ``sasl_*``, ``ssl_*``, ``client_id``) are taken
from ``kafka.producer``, so the admin client talks to the brokers the way the producer does.
"""
from __future__ import annotations

from typing import Any, Mapping


class KafkaUnavailable(RuntimeError):
    """The configured brokers cannot be reached or a needed topic is missing or cannot be made."""


def _client_options(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    producer = {str(k).replace(".", "_"): v for k, v in (kafka_config.get("producer") or {}).items()}
    opts = {k: v for k, v in producer.items() if k.startswith(("security_", "sasl_", "ssl_")) or k == "client_id"}
    timeout_ms = int(kafka_config.get("connect_timeout_ms", 10000))
    opts.update(bootstrap_servers=kafka_config["bootstrap_servers"], request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms)
    return opts


def topic_settings(kafka_config: Mapping[str, Any], topic: str) -> dict[str, Any]:
    """What a new ``topic`` is created with: the shared settings, then its override."""
    roles = {name: role for role, name in (kafka_config.get("topics") or {}).items()}
    overrides = kafka_config.get("topic_overrides") or {}
    override = dict(overrides.get(topic) or overrides.get(roles.get(topic, "")) or {})
    unknown = set(override) - {"partitions", "replication_factor", "config"}
    if unknown:
        raise KafkaUnavailable(f"kafka.topic_overrides for {topic}: unknown setting(s) {', '.join(sorted(unknown))}")
    configs = {**(kafka_config.get("topic_config") or {}), **(override.get("config") or {})}
    return {
        "num_partitions": int(override.get("partitions", kafka_config.get("partitions", 3))),
        "replication_factor": int(override.get("replication_factor", kafka_config.get("replication_factor", 1))),
        "configs": {str(k): str(v) for k, v in configs.items()},
    }


def ensure_topics(kafka_config: Mapping[str, Any], topics: list[str]) -> list[str]:
    """Check the brokers answer and the topics exist; create missing ones when configured.

    Returns the topics it created. Raises KafkaUnavailable with a precise message otherwise.
    """
    from kafka import errors
    from kafka.admin import KafkaAdminClient

    servers = kafka_config["bootstrap_servers"]
    opts = _client_options(kafka_config)
    try:
        admin = KafkaAdminClient(**opts)
    except (errors.KafkaTimeoutError, errors.KafkaConnectionError) as exc:
        raise KafkaUnavailable(f"no Kafka broker reachable at {servers} within "
                               f"{opts['bootstrap_timeout_ms'] / 1000:g} s ({exc})") from exc
    except errors.KafkaError as exc:
        raise KafkaUnavailable(f"cannot talk to Kafka at {servers}: {exc!r}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return []
        if not kafka_config.get("create_topics", True):
            raise KafkaUnavailable(f"topic(s) {', '.join(missing)} missing on {servers} and kafka.create_topics "
                                   "is off: create them, or set kafka.create_topics: true")
        new = {t: topic_settings(kafka_config, t) for t in missing}
        result = admin.create_topics(new, timeout_ms=opts["request_timeout_ms"], raise_errors=False)
        problems = [f"{t['name']}: {t.get('error_message') or errors.for_code(t['error_code']).__name__}"
                    for t in result["topics"]
                    if t["error_code"] not in (0, errors.TopicAlreadyExistsError.errno)]  # made meanwhile: fine
        if problems:  # e.g. a replication factor above the number of brokers, a bad topic config
            raise KafkaUnavailable(f"cannot create topic(s) on {servers}: {'; '.join(problems)}")
        admin.wait_for_topics(missing, timeout_ms=opts["request_timeout_ms"])
        return missing
    except errors.KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {servers} stopped answering: {exc!r}") from exc
    finally:
        admin.close()
