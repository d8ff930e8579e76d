"""Report stage: tidy tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) built from the result records.

Every file is written atomically; no paper value is ever shown (the paper's numbers are not available).
"""
