"""The mail pipeline's processes: the worker that sends, the reaper that recovers."""
