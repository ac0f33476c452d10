"""One reconciler per kind: read the cache, build the desired children, apply the difference,
derive the status and write it only when it changed."""
