"""Measurement helpers shared by every comparison (LLM today; diffusion and GPU comparisons reuse them).

- measure: run a child process and read its own peak RSS; time one phase inside a child (seconds, phase peak
  RSS, peak GPU memory).
- evaluate: completion-token perplexity on a chat test set, the same function for every tool.
- report: medians over repeats, a Markdown table with a tunesmith/peer ratio row, machine description, results JSON.
"""
