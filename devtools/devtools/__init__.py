"""Tooling that starts a whole platform on a laptop or in a test: the `make run`
launcher, real MariaDB/Redis/nginx servers, the SMTP sink, the pytest plugin and
the helpers the services' fixtures share. No service imports it when it runs."""
