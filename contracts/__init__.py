"""Versioned message contracts: pure data, no I/O.

Every message travels in an :class:`~contracts.envelope.Envelope` whose payload is a chunk of
1..N per-case records of one contract version. :func:`contracts.registry.parse` turns any
supported version into the latest model.
"""
