"""The HTTP API: validates, enqueues and reads; never analyses on the event loop."""
