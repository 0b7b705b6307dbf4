"""MQTT transport: topics and encodings (wire), the agent-side link, a node serving an actor, a broker for tests."""
