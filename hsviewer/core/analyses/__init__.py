"""One package per analysis kind (image, reduce, sweep, corpus); each runs as a generator of events."""
