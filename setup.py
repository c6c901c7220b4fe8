"""news-ingest: feeds -> clean article text -> dedup -> topics -> Kafka, on Apache Beam."""
from setuptools import setup

setup(
    name="news-ingest",
    version="0.1.0",
    description="Streaming news ingestion: feeds to clean, deduplicated, topic-tagged Kafka records on Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=["connectors", "pipelines", "schemas"],
    package_data={
        "pipelines": ["*.yaml"],
        "schemas": ["*.json", "*.avsc"],
    },
    include_package_data=True,
    install_requires=[
        "apache-beam==2.77.0",
        "feedparser==6.0.14",
        "kafka-python==3.0.12",
        "trafilatura==2.3.1",
        "lxml==6.1.3",
        "lxml_html_clean==0.4.6",  # trafilatura 2.3 with lxml 6 fails on import without it
        "urllib3==2.8.0",
        "courlan==1.4.0",
        "htmldate==1.11.0",
        "PyYAML==6.0.3",
        "jsonschema==4.26.0",
        "pyahocorasick==2.3.1",
        "datasketch==2.0.0",
        "zstandard==0.25.0",
        "objsize==0.7.1",  # Beam's state cache weighs with it; pipelines/statecache.py sets its options
    ],
    extras_require={
        "test": ["pytest==9.2.0", "fastavro==1.13.1"],
        "avro": ["fastavro==1.13.1"],
    },
    entry_points={"console_scripts": ["newsingest=pipelines.cli:main"]},
)
