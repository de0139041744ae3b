"""pytest plugin (entry point ``chaos``): the Toxiproxy server and proxy fixtures. Placeholder."""
