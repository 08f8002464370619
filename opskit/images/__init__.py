"""Images: the offline base, wheelhouse, layered builds, layer inspection, delta shipping."""
