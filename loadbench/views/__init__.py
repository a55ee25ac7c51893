"""How results are shown: Prometheus exposition, console and Markdown text, HTML pages, charts and live progress."""
