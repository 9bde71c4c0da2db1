"""Profiling: spec, measurement, runner process, Profile table and file format."""
