"""Pure functions from a resource to the child manifests it should have: dicts in, dicts out."""
