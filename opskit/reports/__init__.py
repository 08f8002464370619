"""Offline HTML reports and charts: runs, data check, GPU waffle, layer Venn diagrams."""
