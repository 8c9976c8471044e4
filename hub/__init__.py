"""The hub core: events, store, actions, bus and the wiring that runs them."""
