"""Results application (闭环): findings, rectification and the results-application list."""
