"""Entry points: build and run the Certiverse pipeline, run transforms, the CLI."""
