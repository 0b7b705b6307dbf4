"""Wire code between processes and machines: MQTT (robots and cameras over a broker) and HTTP."""
