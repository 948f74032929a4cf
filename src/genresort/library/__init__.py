"""Crash-safe file operations: each step leaves the disk in a state the journal can finish or undo."""
