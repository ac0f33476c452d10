"""Reference trainers: runnable examples of the pod contract in ``modelwerk.sdk``."""
