"""Topic administration against the real broker: creation with settings, clear errors."""
from __future__ import annotations

import pytest

from connectors.kafka_admin import KafkaUnavailable, ensure_topics, topic_settings


def _config(bootstrap: str, prefix: str, **extra) -> dict:
    return {"bootstrap_servers": bootstrap, "partitions": 2, "replication_factor": 1,
            "topics": {"articles": f"{prefix}.articles", "duplicates": f"{prefix}.duplicates",
                       "dead_letter": f"{prefix}.deadletter"}, **extra}


def _describe(bootstrap: str, topic: str) -> tuple[int, dict]:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (meta,) = admin.describe_topics([topic])
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        values = {k: v["value"] for k, v in configs["topic"][topic].items()}
        return len(meta["partitions"]), values
    finally:
        admin.close()


def test_overrides_by_role_or_name_over_shared_settings():
    cfg = _config("b", "p", topic_config={"retention.ms": 1000, "compression.type": "producer"},
                  topic_overrides={"dead_letter": {"partitions": 1, "config": {"retention.ms": 5000}},
                                   "p.duplicates": {"replication_factor": 3}})
    assert topic_settings(cfg, "p.articles") == {
        "num_partitions": 2, "replication_factor": 1,
        "configs": {"retention.ms": "1000", "compression.type": "producer"}}
    assert topic_settings(cfg, "p.deadletter")["num_partitions"] == 1
    assert topic_settings(cfg, "p.deadletter")["configs"]["retention.ms"] == "5000"
    assert topic_settings(cfg, "p.duplicates")["replication_factor"] == 3
    with pytest.raises(KafkaUnavailable, match="partition"):
        topic_settings(_config("b", "p", topic_overrides={"articles": {"partition": 4}}), "p.articles")


def test_creates_missing_topics_with_their_settings_once(kafka_broker, topic_prefix):
    cfg = _config(kafka_broker.bootstrap, topic_prefix, topic_config={"retention.ms": "3600000"},
                  topic_overrides={"dead_letter": {"partitions": 1, "config": {"max.message.bytes": "200000"}}})
    topics = list(cfg["topics"].values())
    assert sorted(ensure_topics(cfg, topics)) == sorted(topics)
    assert ensure_topics(cfg, topics) == [], "a second run finds them and creates nothing"
    partitions, configs = _describe(kafka_broker.bootstrap, f"{topic_prefix}.articles")
    assert partitions == 2 and configs["retention.ms"] == "3600000"
    partitions, configs = _describe(kafka_broker.bootstrap, f"{topic_prefix}.deadletter")
    assert partitions == 1 and configs["max.message.bytes"] == "200000"


def test_missing_topic_with_creation_off_is_a_clear_error(kafka_broker, topic_prefix):
    cfg = _config(kafka_broker.bootstrap, topic_prefix, create_topics=False)
    with pytest.raises(KafkaUnavailable) as info:
        ensure_topics(cfg, list(cfg["topics"].values()))
    message = str(info.value)
    assert f"{topic_prefix}.articles" in message and f"{topic_prefix}.deadletter" in message
    assert "create_topics is off" in message and kafka_broker.bootstrap in message


def test_impossible_replication_factor_is_a_clear_error(kafka_broker, topic_prefix):
    cfg = _config(kafka_broker.bootstrap, topic_prefix, replication_factor=3)
    with pytest.raises(KafkaUnavailable, match=f"cannot create topic.*{topic_prefix}.articles: .*replication factor of 3"):
        ensure_topics(cfg, [f"{topic_prefix}.articles"])
