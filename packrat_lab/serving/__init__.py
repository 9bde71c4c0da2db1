"""Serving: worker processes, shared-memory transport, dispatcher, batcher, pool, HTTP."""
