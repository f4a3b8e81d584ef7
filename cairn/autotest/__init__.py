"""Auto-test: QA test sessions that capture a device's events apart from production.

A session's write key routes its traffic here instead of the bus (HTTP gateway and the bus
consumer alike); every captured event is judged against the version under test of its
definition, and the session's findings fall in four scenarios. ``plan`` and ``findings``
are pure checking logic; ``postgres`` stores sessions, captured events and saved cases;
``capture`` is the ingestion side; ``service`` starts and finishes sessions (recording
test runs on the definitions); ``feed`` streams captured events to subscribers live.
"""
