"""Report stage: tidy tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) built from the result records.

Every file is written atomically. No paper value is invented: the paper's numbers are unknown, so only the
comparison table could carry a paper column, and only for a value entered with its source (none today).
"""
