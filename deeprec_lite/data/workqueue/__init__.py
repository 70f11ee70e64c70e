"""Dynamic work sharding: WorkQueue hands files (or row ranges) to workers as they ask."""
