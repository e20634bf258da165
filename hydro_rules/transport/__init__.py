"""The node protocol over MQTT: topics, signing, the subscriber and the command publisher.

The only package that imports gmqtt.
"""
