"""Test services (never shipped): a pgstac STAC API, nginx range server and a flaky proxy."""
